"""The tracker: one loop that moves every live run forward, however many there are.

No worker is held per provider job. A single django-q2 task loops for a bounded slice,
claiming runs whose `next_poll_at` has come (a lease, so a crash hands them back), doing
each one's next step on a thread pool, and then hands over to a fresh task. A lease row
keeps it to one loop at a time; a periodic sweep restarts it if it ever stops.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone
from django_q.tasks import async_task

from playground.gateway import Gateway, Job, gateway_from_settings
from playground.runs import steps
from playground.runs.models import Run, TrackerLease

log = logging.getLogger(__name__)
LEASE_NAME = "tracker"


def lease_seconds() -> float:
    return float(settings.TRACKER_LEASE_SECONDS)


def new_holder() -> str:
    """Who holds the lease: host and pid, so a dead holder on this host is seen at once."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _holder_is_dead(holder: str) -> bool:
    host, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's tracker: only its lease expiry tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def claim_lease(holder: str) -> bool:
    """Take or renew the tracker lease. A lease left by a dead tracker on this host is
    taken over at once; one from another host when it expires."""
    now = timezone.now()
    until = now + timedelta(seconds=lease_seconds())
    lease, _ = TrackerLease.objects.get_or_create(name=LEASE_NAME, defaults={"expires_at": now})
    if lease.holder == holder:
        return bool(
            TrackerLease.objects.filter(name=LEASE_NAME, holder=holder).update(expires_at=until)
        )
    stale = lease.expires_at <= now or (lease.holder and _holder_is_dead(lease.holder))
    if not stale:
        return False
    taken = TrackerLease.objects.filter(
        name=LEASE_NAME, holder=lease.holder, expires_at=lease.expires_at
    ).update(holder=holder, expires_at=until)
    if taken and lease.holder:
        log.info("tracker lease taken over from %s", lease.holder)
    return bool(taken)


def release_lease(holder: str) -> None:
    TrackerLease.objects.filter(name=LEASE_NAME, holder=holder).update(
        holder="", expires_at=timezone.now()
    )


def tracker_running() -> bool:
    lease = TrackerLease.objects.filter(name=LEASE_NAME, expires_at__gt=timezone.now()).first()
    return lease is not None and bool(lease.holder) and not _holder_is_dead(lease.holder)


def ensure_tracker() -> None:
    """Start a tracker task unless one holds the lease. Cheap; call it freely."""
    if settings.Q_CLUSTER.get("sync"):
        return  # tests drive the tracker by hand (a sync loop would block the request)
    if not tracker_running():
        # On the main cluster by name: a previews worker's post_spawn sweep comes here too.
        async_task(
            "playground.runs.tracker.track",
            task_name="tracker",
            group="tracker",
            cluster=settings.Q_CLUSTER["name"],
        )


def track(slice_seconds: float | None = None) -> str:
    """The django-q2 task: run the loop for one slice, then hand over if work remains."""
    holder = new_holder()
    if not claim_lease(holder):
        return "another tracker holds the lease"
    slice_seconds = settings.TRACKER_SLICE_SECONDS if slice_seconds is None else slice_seconds
    try:
        taken = run_loop(holder, time.monotonic() + slice_seconds)
    finally:
        release_lease(holder)
    if Run.objects.in_flight().exists():
        ensure_tracker()
    return f"{taken} steps"


def run_loop(holder: str, until: float) -> int:
    """Claim due runs and advance them on a pool until `until` (monotonic) passes."""
    threads = settings.TRACKER_THREADS
    in_flight: dict[int, Future[None]] = {}
    taken = 0
    client = gateway_from_settings(attempts=2, retry_timeout=10)
    gateway = PacedGateway(client)
    with ThreadPoolExecutor(threads, thread_name_prefix="tracker") as pool:
        try:
            last_renew = time.monotonic()
            while True:
                for pk in [pk for pk, future in in_flight.items() if future.done()]:
                    in_flight.pop(pk).result()
                claiming = time.monotonic() < until
                if not claiming and not in_flight:
                    break
                # Renewed for as long as any step runs, the slice's last ones included: a
                # lapsed lease would let a second tracker start the same runs.
                if time.monotonic() - last_renew > lease_seconds() / 3:
                    if not claim_lease(holder):
                        log.warning("tracker lost its lease; stopping")
                        break
                    last_renew = time.monotonic()
                room = threads * 2 - len(in_flight)
                claimed = Run.claim_due(room, exclude=set(in_flight)) if claiming and room else []
                for run in claimed:
                    in_flight[run.pk] = pool.submit(_advance, run, gateway)
                taken += len(claimed)
                if not claimed:
                    if claiming and not in_flight and not Run.objects.in_flight().exists():
                        break  # nothing to track: free the worker
                    time.sleep(0.2)
        finally:
            client.close()
    return taken


# When each job was last polled from this process, across tracker slices.
_last_poll: dict[str, float] = {}
_last_poll_lock = threading.Lock()


class PacedGateway:
    """The gateway, with its rule kept: no job is polled twice within POLL_INTERVAL_SECONDS.

    `next_poll_at` already spaces the claims, but a poll can wait a moment in the pool's
    queue before it is sent, and the next one may not; so the last send time of each job is
    kept and a poll that would come early waits out the difference.
    """

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.interval = settings.POLL_INTERVAL_SECONDS + settings.POLL_MARGIN_SECONDS
        self.submit = gateway.submit
        self.cancel = gateway.cancel
        self.download = gateway.download

    def get_job(self, job_id: str) -> Job | None:
        with _last_poll_lock:
            now = time.monotonic()
            send_at = max(now, _last_poll.get(job_id, 0.0) + self.interval)
            _last_poll[job_id] = send_at
            if len(_last_poll) > 100_000:  # forget the oldest half; they are long finished
                for key in sorted(_last_poll, key=_last_poll.__getitem__)[:50_000]:
                    del _last_poll[key]
        if send_at > now:
            time.sleep(send_at - now)
        # One request: a retry a moment later would break the rule; the next turn retries.
        return self.gateway.get_job(job_id, retry=False)


def _advance(run: Run, gateway: PacedGateway) -> None:
    try:
        steps.advance(run, gateway)
    except Exception:
        # A bug or a broken file must not stop the loop for everybody else; the run's
        # lease expires and it is tried again, and the log says why.
        log.exception("tracker: run %s failed to advance", run.code)
    finally:
        close_old_connections()


def track_until_idle(timeout: float = 60.0) -> None:
    """Drive the loop in this process until no run is in flight (the tests drive it so)."""
    holder = new_holder()
    deadline = time.monotonic() + timeout
    while Run.objects.in_flight().exists() and time.monotonic() < deadline:
        if claim_lease(holder):
            try:
                run_loop(holder, min(deadline, time.monotonic() + 5))
            finally:
                release_lease(holder)
        else:
            time.sleep(0.2)


def sweep() -> str:
    """The periodic Schedule: restart the tracker if live runs have no loop looking after them."""
    if Run.objects.in_flight().exists() and not tracker_running():
        ensure_tracker()
        return "tracker restarted"
    return "ok"

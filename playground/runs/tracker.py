"""The tracker: the loop in every worker that moves the live runs forward.

Each `qcluster` process of the main cluster (the Procfile's `worker`, on one machine or
several) runs one loop beside its task workers; see runs/management/commands/qcluster.py.
No thread is held per provider job. A loop claims runs whose `next_poll_at` has come, does
each one's next step on a thread pool, and hands the run back. Everything the loops share
is in the database, so any number of them share the work:

- claims are per run and disjoint (`Run.claim_due`: `FOR UPDATE SKIP LOCKED` on
  PostgreSQL, a conditional UPDATE everywhere), so no run is worked by two at once;
- the poll rule is kept by the claim, which schedules the next poll of the job a poll
  interval ahead for every worker, and by `PacedGateway`, which pushes that back when a
  poll was answered late (the gateway may have counted it as late as its answer);
- a claim lasts TRACKER_LEASE_SECONDS and is renewed while its step runs, so a dead
  worker's runs come back when it lapses, and at once when a tracker on the same host
  sees the dead one's pid is gone.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Collection
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from playground.gateway import Gateway, Job, gateway_from_settings
from playground.runs import steps
from playground.runs.models import Run, Status, Tracker

log = logging.getLogger(__name__)

# How long a loop with nothing in flight waits before it looks for due runs again: what
# a new run waits at most before its submit starts.
IDLE_WAIT_SECONDS = 0.2


def lease_seconds() -> float:
    return float(settings.TRACKER_LEASE_SECONDS)


def _here() -> str:
    """This host, and its pid namespace: two containers may share a host name (host
    networking) and each have a pid 7, and neither may judge the other's pids."""
    try:
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return socket.gethostname()
    return f"{socket.gethostname()}~{namespace}"


def new_holder() -> str:
    """Who a loop is: where and which pid (so a dead loop here is seen at once), and a
    random part (so two loops in one process, as in the tests, are two holders)."""
    return f"{_here()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _holder_is_dead(holder: str) -> bool:
    where, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if where != _here() or not pid.isdigit():
        return False  # another machine's loop: only its claims lapsing tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Loop:
    """One tracker loop's name and its row in the `Tracker` table."""

    def __init__(self, holder: str | None = None) -> None:
        self.holder = holder or new_holder()
        self.steps = 0
        Tracker.objects.create(holder=self.holder)
        # Rows of loops gone for a week tell nobody anything any more.
        Tracker.objects.filter(seen_at__lt=timezone.now() - timedelta(days=7)).delete()

    def heartbeat(self, in_flight: Collection[int]) -> None:
        """Renew the claims of the steps still running, say this loop is alive, and hand
        back the claims of dead loops on this host."""
        Run.renew_claims(self.holder, in_flight)
        Tracker.objects.filter(holder=self.holder).update(seen_at=timezone.now(), steps=self.steps)
        hand_back_dead_claims()

    def retire(self) -> None:
        Run.release_claims(self.holder)
        Tracker.objects.filter(holder=self.holder).update(
            seen_at=timezone.now(), stopped_at=timezone.now(), steps=self.steps
        )


def hand_back_dead_claims() -> int:
    """Release the claims of loops on this host whose process is gone (a SIGKILL, the OOM
    killer): their runs need not wait for the claims to lapse."""
    released = 0
    for holder in Tracker.objects.filter(
        stopped_at=None, holder__startswith=f"{_here()}:"
    ).values_list("holder", flat=True):
        if _holder_is_dead(holder):
            released += Run.release_claims(holder)
            Tracker.objects.filter(holder=holder).update(stopped_at=timezone.now())
            log.warning("tracker %s is gone; %d of its runs handed back", holder, released)
    return released


def serve(stop: threading.Event, alive: Callable[[], bool] = lambda: True) -> None:
    """A worker's tracker: run the loop until `stop` is set (or `alive` says the worker's
    cluster has died), then finish the steps in flight and hand every claim back."""
    loop = Loop()
    log.info("tracker %s started", loop.holder)
    try:
        hand_back_dead_claims()
        run_loop(loop, stop=stop, alive=alive)
    finally:
        loop.retire()
        log.info("tracker %s stopped after %d steps", loop.holder, loop.steps)


def run_loop(
    loop: Loop,
    *,
    until: float | None = None,
    stop: threading.Event | None = None,
    alive: Callable[[], bool] = lambda: True,
    exit_when_idle: bool = False,
) -> int:
    """Claim due runs and advance them on a pool, until `until` (monotonic) passes or
    `stop` is set; with `exit_when_idle`, also once no run is in flight anywhere."""
    stop = stop or threading.Event()
    threads = settings.TRACKER_THREADS
    in_flight: dict[int, Future[None]] = {}
    client = gateway_from_settings(attempts=2, retry_timeout=10)
    with ThreadPoolExecutor(threads, thread_name_prefix="tracker") as pool:
        try:
            last_beat = time.monotonic()
            while True:
                done = [pk for pk, future in in_flight.items() if future.done()]
                for pk in done:
                    in_flight.pop(pk).result()
                if done:
                    Run.release_claims(loop.holder, done)
                    loop.steps += len(done)
                claiming = not stop.is_set() and (until is None or time.monotonic() < until)
                if claiming and not alive():
                    log.error("tracker %s: the worker's cluster is gone; stopping", loop.holder)
                    claiming = False
                    stop.set()
                if not claiming and not in_flight:
                    break
                # Renewed for as long as any step runs, the last ones included: a lapsed
                # claim would let another loop start the same run.
                if time.monotonic() - last_beat > lease_seconds() / 3:
                    loop.heartbeat(in_flight)
                    last_beat = time.monotonic()
                # Room for twice the threads, so the pool never waits for the next claim
                # (a poll that waits in its queue is paced by its answer: PacedGateway);
                # claimed in batches of at least half the threads while busy, so a busy
                # loop makes a few claims a second, not one per step.
                room = threads * 2 - len(in_flight)
                worth_it = room >= max(1, threads // 2) or not in_flight
                claimed = (
                    Run.claim_due(room, loop.holder, list(in_flight))
                    if claiming and worth_it
                    else []
                )
                for run in claimed:
                    gateway = PacedGateway(client, run)
                    in_flight[run.pk] = pool.submit(_advance, run, gateway)
                if in_flight:
                    # Look again when a step ends, at most 50 times a second, and at
                    # least every IDLE_WAIT_SECONDS (runs come due on their own too).
                    concurrent.futures.wait(
                        in_flight.values(),
                        timeout=IDLE_WAIT_SECONDS,
                        return_when=concurrent.futures.FIRST_COMPLETED,
                    )
                    stop.wait(0.02)
                else:
                    if exit_when_idle and claiming and not Run.objects.in_flight().exists():
                        break
                    stop.wait(IDLE_WAIT_SECONDS)
        finally:
            client.close()
    return loop.steps


class PacedGateway:
    """The gateway for one step of one claimed run, keeping the provider's poll rule: no
    job polled twice within POLL_INTERVAL_SECONDS, by any worker.

    The claim scheduled the job's next poll an interval plus POLL_MARGIN_SECONDS ahead, for
    every worker at once. The gateway counts a poll when it receives it, which may be well
    after we send it (our pool's queue, the network's, the gateway's own, on loaded cores),
    but never after its answer. So the rule is kept from the answers: a poll answered more
    than the margin after its claim pushes the job's next poll to its answer plus the
    interval (before the run is handed back, so no other worker can come in between), and
    any further poll in one step (after a failed cancel, an expired result link) waits out
    the interval from the last answer.
    """

    def __init__(self, gateway: Gateway, run: Run) -> None:
        self.gateway = gateway
        self.run = run
        # The claim counted (and scheduled from) a poll of a job being polled.
        self.planned = run.status in (Status.QUEUED, Status.PROCESSING) and (
            not run.cancel_requested
        )
        self.submit = gateway.submit
        self.cancel = gateway.cancel
        self.download = gateway.download

    def get_job(self, job_id: str) -> Job | None:
        planned, self.planned = self.planned, False
        if not planned:
            self._wait_out_the_interval()
        try:
            # One request: a retry a moment later would break the rule; the next turn
            # retries.
            return self.gateway.get_job(job_id, retry=False)
        finally:
            # Failed or not, the request may have reached the gateway at any time until now.
            answered = timezone.now()
            claimed = self.run.last_polled_at  # the claim's time, for the planned poll
            late = claimed is None or (
                (answered - claimed).total_seconds() > settings.POLL_MARGIN_SECONDS
            )
            if not planned or late:
                self.run.record_poll_answered(answered)

    def _wait_out_the_interval(self) -> None:
        last = self.run.last_polled_at
        if last is None:
            return
        interval = settings.POLL_INTERVAL_SECONDS + settings.POLL_MARGIN_SECONDS
        wait = (last - timezone.now()).total_seconds() + interval
        if wait > 0:
            time.sleep(wait)


def _advance(run: Run, gateway: PacedGateway) -> None:
    try:
        steps.advance(run, gateway)
    except Exception:
        # A bug or a broken file must not stop the loop for everybody else; the run is
        # handed back and tried again at its next turn, and the log says why.
        log.exception("tracker: run %s failed to advance", run.code)
    finally:
        close_old_connections()


def track_until_idle(timeout: float = 60.0) -> None:
    """Drive a loop in this process until no run is in flight (the tests drive it so)."""
    loop = Loop()
    try:
        run_loop(loop, until=time.monotonic() + timeout, exit_when_idle=True)
    finally:
        loop.retire()

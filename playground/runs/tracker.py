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
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, close_old_connections
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
    """This host, its boot and its pid namespace: two machines may share a host name (a
    cloned image), two containers a host name and a pid 7, and none of them may judge the
    others' pids. Without /proc, only the host name: no pid is judged then."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()[:8]
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return socket.gethostname() + "~unknown"
    return f"{socket.gethostname()}~{boot}~{namespace}"


def new_holder() -> str:
    """Who a loop is: where and which pid (so a dead loop here is seen at once), and a
    random part (so two loops in one process, as in the tests, are two holders)."""
    return f"{_here()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _holder_is_dead(holder: str) -> bool:
    where, _, rest = holder.partition(":")
    pid = rest.partition(":")[0]
    if where != _here() or where.endswith("~unknown") or not pid.isdigit():
        return False  # another machine's loop: only its claims lapsing tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class Loop:
    """One tracker loop's name, its row in the `Tracker` table, and the runs it works.

    A thread of its own renews the claims of the steps in flight (and the row) every third
    of the lease, whatever the loop's own thread is doing: a claim must not lapse under a
    running step because the loop waited on a lock or a signal handler.
    """

    def __init__(self, holder: str | None = None) -> None:
        self.holder = holder or new_holder()
        self.steps = 0
        self.working: set[int] = set()
        self._lock = threading.Lock()
        self._beating = threading.Event()
        Tracker.objects.create(holder=self.holder)
        # Rows of loops gone for a week tell nobody anything any more.
        Tracker.objects.filter(seen_at__lt=timezone.now() - timedelta(days=7)).delete()

    def took(self, pks: Collection[int]) -> None:
        with self._lock:
            self.working.update(pks)

    def finished(self, pks: Collection[int]) -> None:
        with self._lock:
            self.working.difference_update(pks)
            self.steps += len(pks)

    def heartbeat(self) -> None:
        """Renew the claims of the steps still running, say this loop is alive, and hand
        back the claims of dead loops on this host."""
        with self._lock:
            working, steps = list(self.working), self.steps
        renewed = Run.renew_claims(self.holder, working)
        if renewed < len(working):  # lapsed, and maybe taken: say so, it should not happen
            log.error("tracker %s lost %d claims", self.holder, len(working) - renewed)
        Tracker.objects.filter(holder=self.holder).update(seen_at=timezone.now(), steps=steps)
        hand_back_dead_claims()

    def beat_in_background(self) -> threading.Thread:
        def beat() -> None:
            while not self._beating.wait(lease_seconds() / 3):
                try:
                    self.heartbeat()
                except Exception:  # a database away for a moment: try again next beat
                    log.exception("tracker %s: heartbeat failed", self.holder)
                finally:
                    close_old_connections()
            close_old_connections()

        self._beating.clear()
        thread = threading.Thread(target=beat, name="tracker-heartbeat", daemon=True)
        thread.start()
        return thread

    def stop_beating(self, thread: threading.Thread) -> None:
        self._beating.set()
        thread.join()

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
    in_flight: dict[int, Future[None]] = {}
    client = gateway_from_settings(attempts=2, retry_timeout=10)
    heartbeat = loop.beat_in_background()
    try:
        with ThreadPoolExecutor(settings.TRACKER_THREADS, thread_name_prefix="tracker") as pool:
            while True:
                try:
                    if not _turn(loop, pool, client, in_flight, stop, until, alive, exit_when_idle):
                        break
                except DatabaseError:
                    # The database went away (a restart, a failover, a lock held too long):
                    # the steps in flight go on, their claims are renewed; try again soon.
                    log.exception("tracker %s: database error; retrying", loop.holder)
                    close_old_connections()
                    stop.wait(1)
    finally:
        # After the pool has drained: a step still running keeps its client and its claim.
        loop.stop_beating(heartbeat)
        client.close()
    return loop.steps


def _turn(
    loop: Loop,
    pool: ThreadPoolExecutor,
    client: Gateway,
    in_flight: dict[int, Future[None]],
    stop: threading.Event,
    until: float | None,
    alive: Callable[[], bool],
    exit_when_idle: bool,
) -> bool:
    """One pass of the loop: hand back what finished, claim what is due, wait a moment.
    False when the loop is done."""
    threads = settings.TRACKER_THREADS
    done = [pk for pk, future in in_flight.items() if future.done()]
    if done:
        Run.release_claims(loop.holder, done)  # first: a failure here leaves them claimed
        for pk in done:
            in_flight.pop(pk).result()
        loop.finished(done)
    claiming = not stop.is_set() and (until is None or time.monotonic() < until)
    if claiming and not alive():
        log.error("tracker %s: the worker's cluster is gone; stopping", loop.holder)
        claiming = False
        stop.set()
    if not claiming and not in_flight:
        return False
    # Room for twice the threads, so the pool never waits for the next claim (a poll that
    # waits in its queue is paced by its answer: PacedGateway); claimed in batches of at
    # least half the threads while busy, so a busy loop makes a few claims a second, not
    # one per step.
    room = threads * 2 - len(in_flight)
    worth_it = room >= max(1, threads // 2) or not in_flight
    claimed = Run.claim_due(room, loop.holder, list(in_flight)) if claiming and worth_it else []
    loop.took([run.pk for run in claimed])
    for run in claimed:
        in_flight[run.pk] = pool.submit(_advance, run, PacedGateway(client, run))
    if in_flight:
        # Look again when a step ends, at most 50 times a second, and at least every
        # IDLE_WAIT_SECONDS (runs come due on their own too).
        concurrent.futures.wait(
            in_flight.values(),
            timeout=IDLE_WAIT_SECONDS,
            return_when=concurrent.futures.FIRST_COMPLETED,
        )
        stop.wait(0.02)
    else:
        if exit_when_idle and claiming and not Run.objects.in_flight().exists():
            return False
        stop.wait(IDLE_WAIT_SECONDS)
    return True


class PacedGateway:
    """The gateway for one step of one claimed run, keeping the provider's poll rule: no
    job polled twice within POLL_INTERVAL_SECONDS, by any worker.

    The claim scheduled the job's next poll an interval plus POLL_MARGIN_SECONDS ahead, for
    every worker at once. The gateway counts a poll when it receives it, which may be well
    after we send it (our pool's queue, the network's, the gateway's own, on loaded cores),
    but never after its answer. So the rule is kept from the answers: a poll answered more
    than half the margin after its claim pushes the job's next poll to its answer plus the
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
            # Half the margin: an answer on time still leaves the other half as slack.
            late = claimed is None or (
                (answered - claimed).total_seconds() > settings.POLL_MARGIN_SECONDS / 2
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

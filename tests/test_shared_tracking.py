"""Tracking shared by several workers: disjoint claims, claims that lapse or are handed
back, and the poll rule kept in the database rather than in one process's memory."""

from __future__ import annotations

import itertools
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from django.db import OperationalError
from django.utils import timezone

from playground.gateway import GatewayError
from playground.runs.models import Run, Tracker
from playground.runs.tracker import (
    Loop,
    PacedGateway,
    _here,
    hand_back_dead_claims,
    run_loop,
)
from tests.builders import ScriptedProvider, make_run
from tests.stack import wait_for

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.django_db(transaction=True)


def due_runs(owner, count: int, **fields) -> list[Run]:
    values = {"status": "processing", "next_poll_at": timezone.now(), **fields}
    return [make_run(owner, **{"provider_job_id": f"job_{i:04d}", **values}) for i in range(count)]


def test_two_trackers_racing_for_work_claim_disjoint_runs(owner):
    due_runs(owner, 30)
    start = threading.Barrier(3)
    claims: dict[str, list[int]] = {}

    def claim(holder: str) -> None:
        start.wait(timeout=5)
        claims[holder] = [run.pk for _ in range(3) for run in Run.claim_due(6, holder)]

    threads = [threading.Thread(target=claim, args=(f"worker-{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    taken = [pk for pks in claims.values() for pk in pks]
    assert len(taken) == len(set(taken)), "a run was claimed by two trackers"
    assert len(taken) == 30  # 3 trackers × 3 claims × up to 6: every due run, once
    by_holder = dict(Run.objects.values_list("pk", "claimed_by"))
    assert all(by_holder[pk] == holder for holder, pks in claims.items() for pk in pks)


def test_a_claimed_run_is_not_due_for_anyone_else_until_handed_back(owner):
    [run] = due_runs(owner, 1)
    assert [r.pk for r in Run.claim_due(10, "a")] == [run.pk]
    Run.objects.filter(pk=run.pk).update(next_poll_at=timezone.now())  # due by its schedule
    assert Run.claim_due(10, "b") == []
    assert Run.release_claims("b", [run.pk]) == 0  # only the holder hands it back
    assert Run.release_claims("a", [run.pk]) == 1
    assert [r.pk for r in Run.claim_due(10, "b")] == [run.pk]


def test_a_dead_workers_claims_lapse_within_the_lease(owner, settings):
    """A worker on another machine died holding runs: they come back when the claim ends."""
    settings.TRACKER_LEASE_SECONDS = 1
    runs = due_runs(owner, 3)
    assert len(Run.claim_due(10, "elsewhere:4242:dead")) == 3
    Run.objects.update(next_poll_at=timezone.now())
    assert Run.claim_due(10, "survivor") == []
    time.sleep(1.1)
    assert {r.pk for r in Run.claim_due(10, "survivor")} == {r.pk for r in runs}


def test_a_dead_tracker_on_this_host_hands_its_runs_back_at_once(owner):
    gone = subprocess.Popen(["true"])
    gone.wait()
    holder = f"{_here()}:{gone.pid}:deadbeef"
    Tracker.objects.create(holder=holder)
    due_runs(owner, 2)
    assert len(Run.claim_due(10, holder)) == 2
    live = Loop()  # this process: alive, its claims stay
    [mine] = due_runs(owner, 1, provider_job_id="job_mine")
    assert [r.pk for r in Run.claim_due(10, live.holder)] == [mine.pk]

    assert hand_back_dead_claims() == 2

    assert set(Run.objects.values_list("claimed_by", flat=True)) == {"", live.holder}
    assert Tracker.objects.get(holder=holder).stopped_at is not None
    assert Tracker.objects.get(holder=live.holder).stopped_at is None


def test_a_tracker_judges_only_the_pids_of_its_own_host_and_namespace(owner):
    """Another machine (or a container sharing this host name) may well have a live pid
    that is dead here: its claims are left to lapse, never handed back early."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    elsewhere = f"{socket.gethostname()}~1:{gone.pid}:cafebabe"  # another pid namespace
    Tracker.objects.create(holder=elsewhere)
    due_runs(owner, 1)
    assert len(Run.claim_due(10, elsewhere)) == 1
    assert hand_back_dead_claims() == 0
    assert Run.objects.get().claimed_by == elsewhere


@pytest.mark.parametrize("answer", ["slow", "failed"])
def test_a_poll_answered_late_pushes_the_next_one_back(owner, settings, answer):
    """The gateway may count a poll as late as its answer (it sat in queues on the way), so
    the next one, by any worker, comes no sooner than an interval after that answer, even
    when the poll failed (it may have arrived all the same)."""
    settings.POLL_MARGIN_SECONDS = 0.2
    [run] = due_runs(owner, 1)
    [claimed] = Run.claim_due(1, "w")
    on_time = claimed.next_poll_at

    def slow(request: httpx.Request) -> httpx.Response:
        time.sleep(0.5)  # past the margin
        if answer == "failed":
            raise httpx.ReadTimeout("no answer", request=request)
        return httpx.Response(200, json={"id": "job_0000", "status": "processing"})

    gateway = PacedGateway(ScriptedProvider({("GET", "gateway.test"): slow}).gateway(), claimed)
    try:
        gateway.get_job("job_0000")
    except GatewayError:
        assert answer == "failed"
    answered = timezone.now()

    run.refresh_from_db()
    assert run.next_poll_at > on_time
    interval = settings.POLL_INTERVAL_SECONDS
    assert (run.next_poll_at - answered).total_seconds() >= interval - 0.1


def test_a_poll_answered_on_time_writes_nothing_more(owner, django_assert_num_queries):
    [run] = due_runs(owner, 1)
    [claimed] = Run.claim_due(1, "w")
    ok = httpx.Response(200, json={"id": "job_0000", "status": "processing"})
    gateway = PacedGateway(ScriptedProvider({("GET", "gateway.test"): ok}).gateway(), claimed)
    with django_assert_num_queries(0):
        gateway.get_job("job_0000")
    run.refresh_from_db()
    assert run.next_poll_at == claimed.next_poll_at


def test_a_second_poll_in_one_step_waits_out_the_interval(owner, settings):
    """A poll the schedule did not plan (a fresh result link) comes no sooner than the rule
    allows after the job's last poll, and pushes the next scheduled one back."""
    last = timezone.now() - timedelta(seconds=1)
    [run] = due_runs(owner, 1, status="fetching", last_polled_at=last)
    [claimed] = Run.claim_due(1, "w")
    polled_at = []

    def poll(request: httpx.Request) -> httpx.Response:
        polled_at.append(timezone.now())
        return httpx.Response(200, json={"id": "job_0000", "status": "processing"})

    gateway = PacedGateway(
        ScriptedProvider({("GET", "/v1/jobs/job_0000"): poll}).gateway(), claimed
    )
    gateway.get_job("job_0000")

    interval = settings.POLL_INTERVAL_SECONDS
    assert (polled_at[0] - last).total_seconds() >= interval
    run.refresh_from_db()
    assert (run.next_poll_at - polled_at[0]).total_seconds() >= interval


def test_two_trackers_share_the_polling_and_keep_the_rule(owner, settings, monkeypatch):
    """Two loops (two holders, as two workers) poll 12 jobs for 8 s: both do part of the
    work, and no job is ever polled twice within 3 s, though no memory is shared between
    the loops' pacing (it is all in the database)."""
    settings.TRACKER_THREADS = 2
    due_runs(owner, 12)
    polls: dict[str, list[float]] = defaultdict(list)
    lock = threading.Lock()

    def poll(request: httpx.Request) -> httpx.Response:
        job = request.url.path.rsplit("/", 1)[-1]
        with lock:
            polls[job].append(time.monotonic())
        return httpx.Response(200, json={"id": job, "status": "processing"})

    provider = ScriptedProvider({("GET", "gateway.test"): poll})
    monkeypatch.setattr("playground.runs.tracker.gateway_from_settings", provider.gateway)
    loops = [Loop(), Loop()]
    until = time.monotonic() + 8
    threads = [
        threading.Thread(target=run_loop, args=(loop,), kwargs={"until": until}) for loop in loops
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    gaps = [b - a for times in polls.values() for a, b in itertools.pairwise(times)]
    assert len(polls) == 12 and gaps
    assert min(gaps) >= settings.POLL_INTERVAL_SECONDS
    assert all(loop.steps > 0 for loop in loops), [loop.steps for loop in loops]
    assert sum(loop.steps for loop in loops) == sum(len(times) for times in polls.values())
    assert not Run.objects.exclude(claimed_by="").exists()  # every claim handed back


# --- a real worker ----------------------------------------------------------------------------


def _worker(var: Path, *extra: str, **env: str) -> subprocess.Popen[bytes]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("AIGATEWAY_", "Q_"))}
    environ.update(
        DJANGO_SETTINGS_MODULE="playground.settings",
        VAR_DIR=str(var),
        SECRET_KEY="shared-tracking-test-secret-key-not-for-production",
        Q_WORKERS="1",
        **env,
    )
    environ.pop("DATABASE_URL", None)  # the worker's own SQLite file under VAR_DIR
    return subprocess.Popen(
        [sys.executable, "manage.py", "qcluster", *extra],
        cwd=ROOT,
        env=environ,
        stdout=(var / f"qcluster-{len(list(var.glob('qcluster-*')))}.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _trackers(var: Path) -> list[tuple[str, str | None]]:
    with sqlite3.connect(var / "db.sqlite3", timeout=30) as db:
        return db.execute("SELECT holder, stopped_at FROM runs_tracker").fetchall()


@pytest.mark.stack
def test_every_main_qcluster_runs_a_tracker_and_the_previews_one_none(tmp_path):
    environ = {**os.environ, "VAR_DIR": str(tmp_path), "SECRET_KEY": "x" * 50}
    environ.pop("DATABASE_URL", None)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v0"],
        cwd=ROOT,
        env=environ,
        check=True,
    )
    main = _worker(tmp_path)
    previews = _worker(tmp_path, Q_CLUSTER_NAME="previews")
    try:
        [(holder, stopped)] = wait_for(lambda: _trackers(tmp_path), timeout=60)
        assert holder.split(":")[1] == str(main.pid) and stopped is None
        time.sleep(1)  # the previews cluster has had time to start (and must add no row)
        assert len(_trackers(tmp_path)) == 1

        os.kill(main.pid, signal.SIGTERM)  # the qcluster process only, as a supervisor does
        assert main.wait(timeout=30) == 0
        [(_, stopped)] = _trackers(tmp_path)
        assert stopped is not None  # it said it stopped, and handed its claims back
    finally:
        for process in (main, previews):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_a_database_error_does_not_stop_the_tracker(owner, monkeypatch):
    """A database restart or failover mid-loop: the loop logs it, reconnects and goes on."""
    due_runs(owner, 2)
    real_claim = Run.claim_due
    failures = []

    def flaky_claim(*args, **kwargs):  # type: ignore[no-untyped-def]
        if not failures:
            failures.append(1)
            raise OperationalError("server closed the connection unexpectedly")
        return real_claim(*args, **kwargs)

    ok = httpx.Response(200, json={"id": "job", "status": "processing"})
    provider = ScriptedProvider({("GET", "gateway.test"): ok})
    monkeypatch.setattr("playground.runs.tracker.gateway_from_settings", provider.gateway)
    monkeypatch.setattr(Run, "claim_due", flaky_claim)
    loop = Loop()
    run_loop(loop, until=time.monotonic() + 2)
    assert failures and loop.steps == 2


def test_a_cancel_refused_as_finished_polls_only_when_the_rule_allows(owner):
    """The provider says "already finished" to a cancel right after a poll: the poll that
    takes the result comes an interval after the last one, not at once."""
    last = timezone.now() - timedelta(seconds=1)
    [run] = due_runs(owner, 1, cancel_requested=True, last_polled_at=last)
    run.drop_cancel_request()
    assert not run.cancel_requested
    assert (run.next_poll_at - last).total_seconds() >= 3

"""Team scale: one deployment of two web and two worker processes on PostgreSQL (with Redis
and the bucket when the pass provides them, tests/postgres.py) tracks 200 runs in flight at
once against the simulator, and survives losing a worker to SIGKILL mid-way.

Runs are posted through both web processes by several users. When it is over, every run
completed exactly once (one provider job per run and per idempotency key, one result, each
billed once), no job was polled within 3 s of its previous poll, both workers did part of
the work, the survivor took over the dead worker's runs within its claim lease, and a
result made through one web process is served by the other to its owner (and only to him).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.services import is_postgres
from tests.stack import Row, Stack, can_rename_host, wait_for

pytestmark = [
    pytest.mark.scale,
    pytest.mark.stack,
    pytest.mark.skipif(
        not is_postgres(os.environ.get("DATABASE_URL", "")),
        reason="needs PostgreSQL: `python tests/postgres.py -m scale` runs it",
    ),
]

RUNS = 200
USERS = ["ada", "bo", "cy", "di"]
DURATIONS = [3, 4, 5]  # a few, so each run's bill says which run it is for
PRICE_PER_SECOND = 168_000  # micro-dollars
LEASE = 10  # TRACKER_LEASE_SECONDS: how long a dead worker's claims hold its runs
MARGIN = 15  # a claim lapses, then the survivor's next turn and its step (2 loaded cores)
POLL_RULE = 3.0
LIVE = "status IN ('pending', 'submitting', 'queued', 'processing', 'fetching')"
# Each job queued 6 s then processing 8 s ± 25 %: 12–16 s, several polls each and time to
# kill a worker mid-way, yet short enough to keep the test to about a minute.
QUEUED, PROCESSING = 6, 8
ENV = {
    "SIMULATOR_QUEUED_SECONDS": str(QUEUED),
    "SIMULATOR_PROCESSING_SECONDS": str(PROCESSING),
    "SIMULATOR_PROCESSING_JITTER": "0.25",
    "SIMULATOR_POLL_LOG": "true",
    # Polling only: the workers, not the webhook view, move every run forward.
    "AIGATEWAY_WEBHOOKS": "false",
    "MAX_INFLIGHT_RUNS_PER_USER": str(RUNS),
    "MONTHLY_BUDGET_USD": "",
    "INSTANCE_MONTHLY_BUDGET_USD": "",
    "USER_STORAGE_QUOTA_MB": "0",
    "TRACKER_LEASE_SECONDS": str(LEASE),
    "Q_WORKERS": "1",  # the trackers run in the qcluster processes themselves
}


@pytest.fixture
def deployment(tmp_path: Path):  # type: ignore[no-untyped-def]
    first = Stack(tmp_path / "a", **ENV)
    second = Stack(tmp_path / "b", share_with=first, **ENV)
    try:
        # H.264 references need no previews: no previews cluster, two cores for the rest.
        # The workers start once all the runs are posted (test below).
        first.start(worker=False, previews=False)
        second.start(worker=False, previews=False)
        yield first, second
    finally:
        first.stop()  # and the second, and drops the deployment's database


def test_it_tracks_200_runs_on_two_workers_and_survives_losing_one(deployment, good_video):
    a, b = deployment
    clients = {(user, web.url): web.user_client(user) for user in USERS for web in (a, b)}

    # Each user uploads the reference once (through A); every run then picks it.
    uploads = {user: a.generate(clients[user, a.url], good_video) for user in USERS}
    reference_codes = {
        user: a.query(
            "SELECT f.code FROM runs_reference f JOIN runs_run r ON r.reference_id = f.id "
            "WHERE r.code = ?",
            code.replace("-", ""),
        )[0]["code"]
        for user, code in uploads.items()
    }

    # The rest, posted together: one thread per user and web process. The workers start
    # only then, so all 200 are in flight at once however long posting takes here.
    plan = [
        (USERS[n % len(USERS)], (a, b)[n // len(USERS) % 2], DURATIONS[n % len(DURATIONS)])
        for n in range(RUNS - len(USERS))
    ]

    def post(lane: list[tuple[str, Stack, int]]) -> list[tuple[str, str, Stack]]:
        made = []
        for user, web, duration in lane:
            code = web.generate(
                clients[user, web.url],
                None,
                reference=str(reference_codes[user]),
                duration=str(duration),
                prompt=f"@Video1 take {len(made)}",
            )
            made.append((code, user, web))
        return made

    lanes = [[p for p in plan if (p[0], p[1].url) == key] for key in clients]
    with ThreadPoolExecutor(len(lanes)) as pool:
        posted = [made for lane in pool.map(post, lanes) for made in lane]
    made_on = {code: web for code, _, web in posted} | {code: a for code in uploads.values()}
    owner_of = {code: user for code, user, _ in posted} | {c: u for u, c in uploads.items()}
    assert len(made_on) == RUNS
    assert a.query("SELECT status, count(*) AS n FROM runs_run GROUP BY status") == [
        ("pending", RUNS)
    ]
    # Worker A as if on another machine where possible: then B knows A's death only by
    # its claims lapsing (on one host, a dead pid hands them back at once).
    a.start_worker(host="machine-a" if can_rename_host() else "")
    b.start_worker()

    # Mid-way: some finished, and the first worker is holding runs when it dies.
    a_pid, b_pid = a.worker.pid, b.worker.pid
    a_holder = wait_for(lambda: holder_of(a, a_pid), timeout=30)

    def midway() -> list[Row]:
        done = a.query("SELECT count(*) AS n FROM runs_run WHERE status = 'completed'")[0]["n"]
        held = a.query(f"SELECT id FROM runs_run WHERE claimed_by = ? AND {LIVE}", a_holder)
        return held if done >= RUNS // 4 else []

    wait_for(midway, timeout=120, every=0.2)
    a.kill_worker()
    killed_at, killed_clock = time.monotonic(), time.time()  # the poll log's clock
    orphans = [
        row["id"] for row in a.query("SELECT id FROM runs_run WHERE claimed_by = ?", a_holder)
    ]
    print(f"killed worker {a_pid} ({a_holder}) holding {len(orphans)} runs")

    # The survivor takes the dead worker's runs over once their claims lapse ...
    wait_for(
        lambda: not a.query(f"SELECT id FROM runs_run WHERE claimed_by = ? AND {LIVE}", a_holder),
        timeout=LEASE + MARGIN,
    )
    took_over = time.monotonic() - killed_at
    # ... and finishes every run: the longest job's time after that, at most.
    wait_for(
        lambda: not a.query(f"SELECT id FROM runs_run WHERE {LIVE}"),
        timeout=QUEUED + PROCESSING * 1.25 + LEASE + MARGIN,
        every=0.5,
    )
    print(f"took over in {took_over:.1f} s, all done {time.monotonic() - killed_at:.1f} s after")

    runs = a.query("SELECT r.*, u.username FROM runs_run r JOIN auth_user u ON u.id = r.user_id")
    assert len(runs) == RUNS
    assert Counter(run["status"] for run in runs) == {"completed": RUNS}, [
        (run["status"], run["error_message"]) for run in runs if run["status"] != "completed"
    ]
    for orphan in orphans:
        [row] = [run for run in runs if run["id"] == orphan]
        assert row["status"] == "completed"

    # One provider job per run and per idempotency key.
    jobs = {
        job: json.loads((a.simulator_root / "jobs" / f"{job}.json").read_text())
        for job in a.simulator_jobs()
    }
    assert len(jobs) == RUNS
    assert sorted(run["provider_job_id"] for run in runs) == sorted(jobs)
    keys = list((a.simulator_root / "idempotency").iterdir())
    assert len(keys) == RUNS
    assert sorted(key.read_text() for key in keys) == sorted(jobs)

    # One result each, and each run billed once, for its own duration.
    assert len({run["result"] for run in runs}) == RUNS
    assert sorted(result_files(a)) == sorted(run["result"] for run in runs)
    for run in runs:
        assert run["billed_cost_micros"] == run["duration"] * PRICE_PER_SECOND
        assert run["duration"] == jobs[run["provider_job_id"]]["duration"]
    for user in USERS:
        mine = [run for run in runs if run["username"] == user]
        assert sum(run["billed_cost_micros"] for run in mine) == PRICE_PER_SECOND * sum(
            jobs[run["provider_job_id"]]["duration"] for run in mine
        )
    assert sum(run["billed_cost_micros"] for run in runs) == PRICE_PER_SECOND * sum(
        job["duration"] for job in jobs.values()
    )

    # The gateway's rule, across both workers and the takeover.
    polls = poll_times(a)
    assert set(polls) == set(jobs)  # every job was polled (polling only)
    gaps = [
        (later - earlier, job)
        for job, times in polls.items()
        for earlier, later in itertools.pairwise(times)
    ]
    too_soon = {job: round(gap, 3) for gap, job in gaps if gap < POLL_RULE}
    assert not too_soon, (
        f"{len(too_soon)} polls within 3 s of the last: {too_soon}; their polls, in seconds "
        "after the kill: "
        + repr({job: [round(t - killed_clock, 2) for t in polls[job]] for job in too_soon})
    )
    print(f"{sum(map(len, polls.values()))} polls, shortest gap {min(gaps)[0]:.2f} s")

    # Both workers did part of the work.
    steps = {
        int(row["holder"].split(":")[1]): row["steps"]
        for row in a.query("SELECT holder, steps FROM runs_tracker")
    }
    print(f"tracker steps: worker A {steps.get(a_pid)}, worker B {steps.get(b_pid)}")
    assert steps.get(a_pid, 0) > 0
    assert steps.get(b_pid, 0) > 0

    # A result made through A plays from B, for its owner only.
    code = next(code for code, web in made_on.items() if web is a)
    run = a.run(code)
    owner = clients[owner_of[code], b.url]
    answer = owner.get(f"/runs/{code}/result.mp4", follow_redirects=True)
    assert answer.status_code == 200
    output = a.simulator_root / "outputs" / f"{run['provider_job_id']}.mp4"
    assert hashlib.sha256(answer.content).digest() == hashlib.sha256(output.read_bytes()).digest()
    stranger = b.user_client("stranger")
    assert stranger.get(f"/runs/{code}/result.mp4", follow_redirects=True).status_code == 404


def holder_of(stack: Stack, pid: int) -> str | None:
    """The tracker row of the qcluster whose process is `pid` (holder host:pid:random)."""
    for row in stack.query("SELECT holder FROM runs_tracker WHERE stopped_at IS NULL"):
        if row["holder"].split(":")[1] == str(pid):
            return str(row["holder"])
    return None


def poll_times(stack: Stack) -> dict[str, list[float]]:
    """When the simulator saw each job polled (SIMULATOR_POLL_LOG), in order."""
    times: dict[str, list[float]] = {}
    for log in stack.simulator_root.glob("polls-*.log"):
        for line in log.read_text().splitlines():
            job, _, when = line.partition(" ")
            times.setdefault(job, []).append(float(when))
    return {job: sorted(seen) for job, seen in times.items()}


def result_files(stack: Stack) -> list[str]:
    """The names of the result videos the deployment's storage holds."""
    env = stack.env
    if bucket := env.get("MEDIA_S3_BUCKET"):
        from tests import s3

        listing = s3.client(env).get_paginator("list_objects_v2")
        pages = listing.paginate(Bucket=bucket, Prefix="results/")
        names = [item["Key"] for page in pages for item in page.get("Contents", [])]
    else:
        names = [
            str(path.relative_to(stack.media_root))
            for path in (stack.media_root / "results").glob("*")
        ]
    return [name for name in names if name.endswith(".mp4")]

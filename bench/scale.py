#!/usr/bin/env python
"""Benchmark the tracker on PostgreSQL with one and with two workers; prints Markdown.

    .venv/bin/python bench/scale.py                       # 1 and 2 workers, 1,000 and 5,000 jobs
    .venv/bin/python bench/scale.py --workers 2 --jobs 1500 2000

It starts a throwaway PostgreSQL (tests/services.py), the real stack on it (gunicorn with
2 processes serving the app and the simulator, and `qcluster` workers, each running its
tracker loop), and for each set-up and each N creates N runs at once, polling only (no
webhooks), simulated jobs of 20–60 s. While they complete it measures:
  - polling lag and completion lag (below) p50/p95,
  - polls per job against the floor (job time ÷ 3 s), and the shortest gap between two
    polls of one job as the simulator received them,
  - the steps each worker's tracker did (runs_tracker),
  - the CPU seconds each kind of process used (from /proc), the profile that shows where
    two cores go.
The polling lag runs from the simulator's job completing to our poll that saw it (the run's
provider_completed_at); the completion lag, to our run completed (result copied, poster
made). A set-up's capacity is the most jobs in flight it tracked with a polling lag p95 ≤ 4 s
(a poll every 3.6 s alone gives about 3.4 s).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))  # bench/run.py

LAG_GOAL_SECONDS = 4.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_by_kind() -> dict[str, float]:
    """CPU seconds used so far by every process on the machine, summed by kind."""
    totals: dict[str, float] = defaultdict(float)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            cmdline = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        seconds = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
        totals[_kind(cmdline, text)] += seconds
    return totals


def _kind(cmdline: str, stat: str) -> str:
    if "gunicorn" in cmdline:
        return "web + simulator (gunicorn)"
    if "qcluster" in cmdline:
        return "workers (qcluster)"
    if "postgres" in stat.split(")")[0] or "postgres" in cmdline:
        return "PostgreSQL"
    if "bench/scale.py" in cmdline:
        return "this benchmark"
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--processing", type=float, default=40.0)
    parser.add_argument("--threads", type=int, default=32, help="TRACKER_THREADS per worker")
    args = parser.parse_args()

    from tests.services import postgres
    from tests.stack import Stack

    env = {
        "Q_WORKERS": "1",
        "AIGATEWAY_WEBHOOKS": "false",  # polling only
        "SIMULATOR_PROCESSING_JITTER": "0.5",  # 40 s ± 50 %: 20–60 s jobs
        "SIMULATOR_QUEUED_SECONDS": "2",
        "SIMULATOR_PROCESSING_SECONDS": str(args.processing),
        "TRACKER_THREADS": str(args.threads),
        "MAX_INFLIGHT_RUNS_PER_USER": "0",
        "USER_STORAGE_QUOTA_MB": "0",
        "SIMULATOR_POLL_LOG": "true",
        "SIMULATOR_MAX_ACTIVE_JOBS": "20000",
    }
    results = []
    with postgres() as server:
        os.environ["DATABASE_URL"] = server
        # One deployment; its second worker is a second instance's (as a second machine's).
        first = Stack(Path(tempfile.mkdtemp(prefix="playground-scale-")), web_workers=2, **env)
        instances = [first] + [
            Stack(Path(tempfile.mkdtemp(prefix="playground-scale-")), share_with=first, **env)
            for _ in range(max(args.workers) - 1)
        ]
        # This process reads the deployment's database through the ORM, with its settings.
        for key in ("VAR_DIR", "SECRET_KEY", "DATABASE_URL", "SIMULATOR_ROOT", "MEDIA_ROOT"):
            os.environ[key] = first.env[key]
        os.environ["DJANGO_SETTINGS_MODULE"] = "playground.settings"
        import django

        django.setup()
        try:
            first.start(previews=False)
            running = 1
            for workers in sorted(args.workers):
                for instance in instances[running:workers]:
                    instance.start_worker()
                running = max(running, workers)
                batches = [measure(first, n) for n in args.jobs]
                results.append({"workers": workers, "batches": batches})
        finally:
            first.stop()
    report(results, args)


def measure(stack, n: int) -> dict:  # type: ignore[no-untyped-def]
    from run import percentile, simulator_poll_times  # bench/run.py

    from playground.runs.models import Run, Tracker

    user, reference = _user_and_reference(stack)
    import uuid

    from django.utils import timezone

    label = f"scale-{n}-{uuid.uuid4().hex[:6]}"
    for log in stack.simulator_root.glob("polls-*.log"):
        log.unlink()  # the previous batch's polls
    steps_before = dict(Tracker.objects.values_list("holder", "steps"))
    Run.objects.bulk_create(
        [
            Run(
                user=user,
                reference=reference,
                idempotency_key=uuid.uuid4(),
                prompt=label,
                duration=3,
                estimated_cost_micros=3 * 168_000,
                next_poll_at=timezone.now(),
            )
            for _ in range(n)
        ],
        batch_size=1000,
    )
    runs = Run.objects.filter(prompt=label)
    cpu_before, started = cpu_by_kind(), time.monotonic()
    peak = 0
    live = ["pending", "submitting", "queued", "processing", "fetching"]
    while runs.filter(status__in=live).exists():
        peak = max(peak, runs.filter(status__in=["queued", "processing"]).count())
        if time.monotonic() - started > 1800:
            raise SystemExit(f"{n} jobs did not finish in 30 minutes")
        time.sleep(1)
    wall = time.monotonic() - started
    cpu_after = cpu_by_kind()

    polls = simulator_poll_times(stack)
    lags, noticed, ratios, per_job, gaps = [], [], [], [], []
    statuses: dict[str, int] = defaultdict(int)
    jobs = stack.simulator_root / "jobs"
    outputs = stack.simulator_root / "outputs"
    for run in runs:
        statuses[run.status] += 1
        if run.status != "completed":
            continue
        job = json.loads((jobs / f"{run.provider_job_id}.json").read_text())
        due = job["created"] + job["queued_seconds"] + job["processing_seconds"]
        done = max(due, (outputs / f"{run.provider_job_id}.mp4").stat().st_mtime)
        lags.append(run.finished_at.timestamp() - done)
        noticed.append(run.provider_completed_at.timestamp() - done)
        times = sorted(polls.get(run.provider_job_id, []))
        per_job.append(len(times))
        gaps.extend(b - a for a, b in itertools.pairwise(times))
        ratios.append(len(times) / ((done - job["created"]) / 3.0))
    steps = {
        holder: count - steps_before.get(holder, 0)
        for holder, count in Tracker.objects.values_list("holder", "steps")
        if count - steps_before.get(holder, 0) > 0
    }
    return {
        "jobs": n,
        "statuses": dict(statuses),
        "peak_in_flight": peak,
        "wall_seconds": round(wall, 1),
        "noticed_p50": percentile(noticed, 50),
        "noticed_p95": percentile(noticed, 95),
        "lag_p50": percentile(lags, 50),
        "lag_p95": percentile(lags, 95),
        "lag_max": max(lags),
        "polls_per_job": sum(per_job) / len(per_job),
        "polls_over_floor": sum(ratios) / len(ratios),
        "min_poll_gap": min(gaps) if gaps else None,
        "polls_under_3s": sum(1 for gap in gaps if gap < 3.0),
        "steps_by_worker": sorted(steps.values(), reverse=True),
        "cores_used": {
            kind: round((cpu_after[kind] - cpu_before.get(kind, 0.0)) / wall, 2)
            for kind in cpu_after
            if cpu_after[kind] - cpu_before.get(kind, 0.0) > 0.5
        },
    }


def _user_and_reference(stack):  # type: ignore[no-untyped-def]
    from django.contrib.auth.models import User
    from django.core.files.uploadedfile import SimpleUploadedFile

    from playground.runs.models import Reference
    from playground.runs.references import store_upload
    from tests.videos import make_video

    user = User.objects.filter(username="bench").first()
    if user is None:
        stack.user_client("bench", "bench-pass-12345").close()
        user = User.objects.get(username="bench")
    reference = Reference.objects.filter(user=user).first()
    if reference is None:
        clip = make_video(stack.root / "ref.mp4", width=720, height=720, seconds=3.2)
        reference = store_upload(user, SimpleUploadedFile("ref.mp4", clip.read_bytes()))
    return user, reference


def report(results: list[dict], args: argparse.Namespace) -> None:
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    print(
        f"\nMeasured {when} on {os.cpu_count()} cores, PostgreSQL, polling only; simulated "
        f"jobs take {args.processing:g} s ± 50 % + 2 s queued; TRACKER_THREADS={args.threads}.\n"
    )
    print(
        "| workers | jobs at once | peak in flight | polling lag p50 / p95 | completion lag "
        "p50 / p95 / max | polls "
        "per job | polls ÷ floor | shortest gap between two polls of a job | steps per "
        "worker | all done in |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for setup in results:
        for r in setup["batches"]:
            gap = f"{r['min_poll_gap']:.2f} s" if r["min_poll_gap"] is not None else "—"
            if r["polls_under_3s"]:
                gap += f" ({r['polls_under_3s']} under 3 s)"
            print(
                f"| {setup['workers']} | {r['jobs']} | {r['peak_in_flight']} | "
                f"{r['noticed_p50']:.2f} s / {r['noticed_p95']:.2f} s | "
                f"{r['lag_p50']:.2f} s / {r['lag_p95']:.2f} s / {r['lag_max']:.2f} s | "
                f"{r['polls_per_job']:.1f} | {r['polls_over_floor']:.2f} | {gap} | "
                f"{' + '.join(map(str, r['steps_by_worker']))} | {r['wall_seconds']} s |"
            )
    print("\nCapacity (most jobs in flight with a polling lag p95 ≤ 4 s, of those measured):")
    for setup in results:
        within = [r["jobs"] for r in setup["batches"] if r["noticed_p95"] <= LAG_GOAL_SECONDS]
        print(f"- {setup['workers']} worker(s): {max(within) if within else 'below all'}")
    print("\nCores used while the jobs ran (CPU seconds ÷ wall seconds), by process kind:")
    for setup in results:
        for r in setup["batches"]:
            used = ", ".join(f"{kind} {cores}" for kind, cores in sorted(r["cores_used"].items()))
            print(f"- {setup['workers']} worker(s), {r['jobs']} jobs: {used}")
    print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""Benchmark the tracker and the status poll on this machine; prints a Markdown table.

    make bench            # = .venv/bin/python bench/run.py --jobs 100 1000

It starts the real stack (gunicorn serving the app and the simulator, and ONE qcluster
worker process), creates N runs at once, and measures while they complete:
  - peak jobs in flight tracked by the one worker,
  - completion lag: when our run is completed (result copied, poster made) minus when the
    simulator's job completed, p50/p95/max,
  - provider requests per job, against the floor of one poll per 3 s of job time,
  - polls that came faster than the gateway's 3 s rule (the simulator counts them),
and then the status-poll endpoint's requests/s over /healthz's (hello world, same server,
same middleware), measured with wrk.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))
    return ordered[k]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[100, 1000])
    parser.add_argument(
        "--processing",
        type=float,
        default=40.0,
        help="simulated provider processing time per job, seconds",
    )
    parser.add_argument("--wrk-seconds", type=int, default=6)
    parser.add_argument(
        "--poll-only",
        action="store_true",
        help="skip the tracker batches; measure the status poll only",
    )
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["polling", "webhooks"],
        choices=["polling", "webhooks"],
        help="polling only, or webhooks with polling as the fallback",
    )
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="playground-bench-"))
    from tests.stack import Stack, wait_for

    stack = Stack(
        tmp,
        web_workers=2,  # as `make run` serves
        Q_WORKERS="1",
        # Real jobs take 30 s to 15 min; identical times would be a thundering herd no
        # provider produces, so simulated times spread ±50 % around --processing.
        SIMULATOR_PROCESSING_JITTER="0.5",
        SIMULATOR_QUEUED_SECONDS="2",
        SIMULATOR_PROCESSING_SECONDS=str(args.processing),
        TRACKER_THREADS="32",
        TRACKER_LEASE_SECONDS="30",
        MAX_INFLIGHT_RUNS_PER_USER="0",
        USER_STORAGE_QUOTA_MB="0",  # one user makes thousands of runs here
        SIMULATOR_POLL_LOG="true",
    )
    # This process talks to the stack's database through the ORM, with the same settings.
    os.environ.update(
        {
            k: v
            for k, v in stack.env.items()
            if k in {"VAR_DIR", "PORT", "SECRET_KEY", "DJANGO_SETTINGS_MODULE"}
        }
    )
    os.environ.pop("AIGATEWAY_API_KEY", None)
    import django

    django.setup()
    stack.start()
    try:
        results = []
        for mode in [] if args.poll_only else args.modes:
            # The worker decides at submit whether a job gets a webhook_url.
            stack.kill_worker()
            stack.env["AIGATEWAY_WEBHOOKS"] = "true" if mode == "webhooks" else "false"
            stack.start_worker()
            for n in args.jobs:
                results.append({"mode": mode, **measure_batch(stack, n, wait_for)})
        poll = measure_poll(stack, args.wrk_seconds, wait_for)
    finally:
        stack.stop()
    report(results, poll, args)


def bench_user_and_reference(stack):  # type: ignore[no-untyped-def]
    from django.contrib.auth.models import User
    from django.core.files.uploadedfile import SimpleUploadedFile

    from playground.runs.models import Reference
    from playground.runs.references import store_upload
    from tests.videos import make_video

    user = User.objects.filter(username="bench").first()
    if user is None:
        client = stack.user_client("bench", "bench-pass-12345")
        client.close()
        user = User.objects.get(username="bench")
    reference = Reference.objects.filter(user=user).first()
    if reference is None:
        clip = make_video(stack.root / "ref.mp4", width=720, height=720, seconds=3.2)
        reference = store_upload(user, SimpleUploadedFile("ref.mp4", clip.read_bytes()))
    return user, reference


def measure_batch(stack, n: int, wait_for) -> dict:  # type: ignore[no-untyped-def]
    import uuid

    from django.utils import timezone

    from playground.runs.models import Run

    user, reference = bench_user_and_reference(stack)
    now = timezone.now()
    batch = f"bench-{n}-{uuid.uuid4().hex[:6]}"
    Run.objects.bulk_create(
        [
            Run(
                user=user,
                reference=reference,
                idempotency_key=uuid.uuid4(),
                prompt=batch,
                duration=3,
                estimated_cost_micros=3 * 168_000,
                next_poll_at=now,
            )
            for _ in range(n)
        ]
    )
    runs = Run.objects.filter(prompt=batch)
    started = time.monotonic()
    peak = 0
    while runs.filter(
        status__in=["pending", "submitting", "queued", "processing", "fetching"]
    ).exists():
        peak = max(peak, runs.filter(status__in=["queued", "processing"]).count())
        if time.monotonic() - started > 900:
            raise SystemExit(f"batch of {n} did not finish in 15 minutes")
        time.sleep(0.5)
    wall = time.monotonic() - started

    poll_times = simulator_poll_times(stack)
    sim_jobs = stack.var / "simulator" / "jobs"
    outputs = stack.var / "simulator" / "outputs"
    lags, ratios, polls, gaps = [], [], [], []
    statuses: dict[str, int] = {}
    for run in runs:
        statuses[run.status] = statuses.get(run.status, 0) + 1
        if run.status != "completed":
            continue
        job = json.loads((sim_jobs / f"{run.provider_job_id}.json").read_text())
        due = job["created"] + job["queued_seconds"] + job["processing_seconds"]
        provider_done = max(due, (outputs / f"{run.provider_job_id}.mp4").stat().st_mtime)
        lags.append(run.finished_at.timestamp() - provider_done)
        job_seconds = provider_done - job["created"]
        # Polls as the simulator received them, and the gaps between them.
        times = sorted(poll_times.get(run.provider_job_id, []))
        job_polls = len(times)
        polls.append(job_polls)
        gaps.extend(b - a for a, b in itertools.pairwise(times))
        ratios.append(job_polls / (job_seconds / 3.0))
    return {
        "jobs": n,
        "statuses": statuses,
        "peak_in_flight": peak,
        "wall_seconds": round(wall, 1),
        "lag_p50": percentile(lags, 50),
        "lag_p95": percentile(lags, 95),
        "lag_max": max(lags),
        "polls_per_job": statistics.mean(polls),
        "polls_over_floor": statistics.mean(ratios),
        "min_poll_gap": min(gaps) if gaps else None,
        "polls_under_3s": sum(1 for g in gaps if g < 3.0),
    }


def simulator_poll_times(stack) -> dict[str, list[float]]:  # type: ignore[no-untyped-def]
    times: dict[str, list[float]] = {}
    for log in (stack.var / "simulator").glob("polls-*.log"):
        for line in log.read_text().splitlines():
            job_id, _, when = line.partition(" ")
            times.setdefault(job_id, []).append(float(when))
    return times


def measure_poll(stack, seconds: int, wait_for) -> dict:  # type: ignore[no-untyped-def]
    from playground.runs.models import Run

    client = stack.user_client("bench", "bench-pass-12345")
    bench_user_and_reference(stack)
    code = stack.generate(client, stack.root / "ref.mp4", prompt="[sim:hang] a live card")
    wait_for(lambda: Run.objects.get(code=code).status == "processing", timeout=60)
    cookie = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    # The URL the run page's card polls, and the status key the page sends with it.
    page = client.get(f"/runs/{code}/").text
    poll_url = stack.url + re.search(r'hx-get="([^"]+)"', page).group(1)
    key = re.search(r'"X-Status-Key": &quot;([^&]+)&quot;|"X-Status-Key": "([^"]+)"', page)
    status_key = next(group for group in key.groups() if group)
    time.sleep(5)  # let the batches' last work settle
    # Alternate the two, four times, and keep each one's best: neither gets a quieter
    # machine, and a run where wrk's connections all land on one gunicorn process counts
    # for neither.
    polls, hellos = [], []
    for _ in range(4):
        polls.append(wrk(poll_url, seconds, cookie=cookie, htmx=True, key=status_key))
        hellos.append(wrk(f"{stack.url}/healthz", seconds, cookie=cookie))
    Run.objects.get(code=code).request_cancel()
    poll, hello = max(polls), max(hellos)
    return {
        "poll_rps": poll,
        "hello_rps": hello,
        "ratio": poll / hello,
        "runs": {"poll": polls, "hello": hellos},
    }


def wrk(url: str, seconds: int, *, cookie: str, htmx: bool = False, key: str = "") -> float:
    # One wrk thread, so the load generator takes less of the two cores from the server.
    cmd = ["wrk", "-t1", "-c8", f"-d{seconds}s", "-H", f"Cookie: {cookie}"]
    if htmx:
        cmd += ["-H", "HX-Request: true"]
    if key:
        cmd += ["-H", f"X-Status-Key: {key}"]
    out = subprocess.run([*cmd, url], capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise SystemExit(f"wrk saw errors from {url}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def report(results: list[dict], poll: dict, args: argparse.Namespace) -> None:
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    print(
        f"\nMeasured {when} on {os.cpu_count()} cores; one qcluster worker process; "
        f"simulated jobs take {args.processing:g} s ± 50 % + 2 s queued.\n"
    )
    print(
        "| mode | jobs at once | peak in flight (1 worker) | completion lag p50 / p95 / max "
        "| polls per job | polls ÷ floor (job time ÷ 3 s) | shortest gap between two polls "
        "of a job | all done in |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in results:
        gap = f"{r['min_poll_gap']:.2f} s" if r["min_poll_gap"] is not None else "—"
        print(
            f"| {r['mode']} | {r['jobs']} | {r['peak_in_flight']} | {r['lag_p50']:.2f} s / "
            f"{r['lag_p95']:.2f} s / {r['lag_max']:.2f} s | {r['polls_per_job']:.1f} | "
            f"{r['polls_over_floor']:.2f} | {gap} | {r['wall_seconds']} s |"
        )
    print(
        f"\nStatus poll: {poll['poll_rps']:.0f} req/s; hello world: "
        f"{poll['hello_rps']:.0f} req/s; ratio {poll['ratio']:.2f} (goal ≥ 0.8); "
        f"each the best of four {args.wrk_seconds} s wrk runs, alternated: "
        f"{json.dumps(poll['runs'])}."
    )
    print(json.dumps({"batches": results, "poll": poll}, default=str))


if __name__ == "__main__":
    main()

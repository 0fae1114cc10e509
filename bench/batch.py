#!/usr/bin/env python
"""How fast a 10-variant batch reaches the provider after Generate is pressed.

    .venv/bin/python bench/batch.py [--rounds 5] [--variants 10]

It starts the real stack (gunicorn and one qcluster worker, the simulator as the gateway),
signs a user in over HTTP, and each round POSTs the Generate form as a browser does: one
prompt plus nine lines in the Variants box, against a reference already in the library.
It reports, per round, the time from sending the POST to the moment the last of the ten
runs had its job accepted by the simulator (`submitted_at`), and after the runs finish,
the shortest gap between two polls of one job as the simulator saw them (the gateway's
rule: no job polled twice within 3 s).
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run import bench_user_and_reference, simulator_poll_times  # noqa: E402
from tests.stack import Stack, _csrf, wait_for  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--variants", type=int, default=10)
    args = parser.parse_args()

    stack = Stack(
        Path(tempfile.mkdtemp(prefix="playground-bench-batch-")),
        web_workers=2,  # as `make run` serves
        Q_WORKERS="1",
        SIMULATOR_QUEUED_SECONDS="1",
        SIMULATOR_PROCESSING_SECONDS="8",
        MAX_INFLIGHT_RUNS_PER_USER="0",
        USER_STORAGE_QUOTA_MB="0",
        SIMULATOR_POLL_LOG="true",
        AIGATEWAY_WEBHOOKS="false",  # polling only: the poll rule is what is checked
    )
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
    from playground.runs.models import Batch, Run

    stack.start()
    try:
        client = stack.user_client("bench", "bench-pass-12345")
        _, reference = bench_user_and_reference(stack)
        delays = []
        for round_ in range(args.rounds):
            page = client.get("/")
            key = re.search(r'name="idempotency_key" value="([^"]+)"', page.text).group(1)
            data = {
                "prompt": f"@Video1 round {round_} variant 0",
                "variants": "\n".join(
                    f"@Video1 round {round_} variant {n}" for n in range(1, args.variants)
                ),
                "duration": "3",
                "aspect_ratio": "auto",
                "reference": str(reference.code),
                "idempotency_key": key,
                "csrfmiddlewaretoken": _csrf(page.text),
            }
            pressed = time.time()
            response = client.post("/", data=data)
            assert response.status_code == 302, response.text[:2000]
            batch = Batch.objects.get(idempotency_key=key)
            runs = Run.objects.filter(batch=batch)
            assert runs.count() == args.variants
            unsent = runs.filter(submitted_at=None)
            wait_for(lambda unsent=unsent: not unsent.exists(), timeout=60, every=0.02)
            last = max(run.submitted_at.timestamp() for run in runs)
            delays.append(last - pressed)
            print(
                f"round {round_ + 1}: {args.variants} runs submitted "
                f"{last - pressed:.2f} s after the POST"
            )
            wait_for(lambda: not Run.objects.in_flight().exists(), timeout=300, every=0.5)
        gaps = [
            b - a
            for times in simulator_poll_times(stack).values()
            for a, b in itertools.pairwise(sorted(times))
        ]
    finally:
        stack.stop()
    print()
    print("| variants | rounds | last submitted after the POST: median | max | shortest poll gap |")
    print("|---|---|---|---|---|")
    print(
        f"| {args.variants} | {args.rounds} | {statistics.median(delays):.2f} s "
        f"| {max(delays):.2f} s | {min(gaps):.2f} s |"
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""How fast the history answers with 10,000 runs; prints a Markdown table.

    .venv/bin/python bench/history.py [--runs 10000] [--rounds 200]

Makes one user with N runs (spread over a year, as a heavy user's would be: about 27 a
day, so the spend chart's last 30 days hold some 800 of them) in a fresh SQLite database,
then times requests through the whole Django stack (middleware, session, templates; Django's
test client, no network) and reports p50/p95 per request: the first page, a search for a
word in ~1 % of prompts, one in ~40 %, the starred filter, a deep page, and the htmx
results-only answer the filter form gets. Also prints the queries each one makes and
SQLite's plan for the page query, so an index can be judged on evidence.
"""

from __future__ import annotations

import argparse
import atexit
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["VAR_DIR"] = tempfile.mkdtemp(prefix="bench-history-")
atexit.register(shutil.rmtree, os.environ["VAR_DIR"], ignore_errors=True)
os.environ["STATIC_ROOT"] = os.path.join(os.environ["VAR_DIR"], "static")
os.environ["DJANGO_SETTINGS_MODULE"] = "playground.settings"
os.environ.pop("AIGATEWAY_API_KEY", None)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402
from django.urls import reverse  # noqa: E402
from django.utils import timezone  # noqa: E402

from playground.runs.history import HistoryFilter  # noqa: E402
from playground.runs.models import Reference, Run  # noqa: E402

STYLES = [
    "at golden hour, warm light", "in the rain, neon reflections", "as a watercolour",
    "in black and white film grain", "under a snowstorm", "as a claymation", "at dusk, blue hour",
    "in a desert, heat haze", "with golden fireworks", "as an oil painting",
]  # fmt: skip
RARE = "lighthouse"  # in ~1 % of prompts
COMMON = "golden"  # in ~40 % of prompts (the styles above, and added at random)
STATUSES = ["completed"] * 85 + ["failed"] * 8 + ["cancelled"] * 4 + ["timed_out"] * 3


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1))))]


def make_runs(user: User, reference: Reference, count: int) -> None:
    rng = random.Random(9)
    now = timezone.now()
    year = 365 * 24 * 3600
    runs = []
    for i in range(count):
        words = [rng.choice(STYLES)]
        if rng.random() < 0.01:
            words.append(f"by a {RARE}")
        if rng.random() < 0.25:
            words.append(f"{COMMON} details")
        status = rng.choice(STATUSES)
        billed = 504_000 if status == "completed" else 0
        runs.append(
            Run(
                user=user,
                reference=reference,
                idempotency_key=uuid.uuid4(),
                prompt=f"@Video1 shot {i} " + ", ".join(words),
                status=status,
                duration=3,
                estimated_cost_micros=504_000,
                billed_cost_micros=billed,
                billed_seconds=3 if billed else 0,
                cost_source="computed" if billed else "",
                simulated=settings.SIMULATOR_ENABLED,
                starred=rng.random() < 0.03,
                note="keeper" if rng.random() < 0.02 else "",
                created_at=now - timedelta(seconds=rng.randrange(year)),
            )
        )
    Run.objects.bulk_create(runs, batch_size=1000)


def measure(client: Client, url: str, rounds: int, headers: dict[str, str]) -> dict:
    for _ in range(10):  # warm up: templates compiled, caches filled
        client.get(url, headers=headers)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, headers=headers)
    return {
        "p50": statistics.median(times),
        "p95": percentile(times, 95),
        "queries": len(queries),
        "bytes": len(response.content),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--plan", action="store_true", help="print SQLite's query plans")
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    # Pages name their static files through the manifest, as `make run` collects them.
    call_command("collectstatic", interactive=False, verbosity=0)
    user = User.objects.create_user("bench", password="bench-pass-123")
    reference = Reference.objects.create(
        user=user, name="r.mp4", file="r.mp4", format_name="mp4", codec="h264",
        width=960, height=720, fps=24, duration=3.5, size=1,
    )  # fmt: skip
    started = time.perf_counter()
    make_runs(user, reference, args.runs)
    made = time.perf_counter() - started
    client = Client(HTTP_HOST="localhost")  # a host ALLOWED_HOSTS takes; no test environment
    client.force_login(user)

    history = reverse("history")
    rare = Run.objects.filter(prompt__icontains=RARE).count()
    common = Run.objects.filter(prompt__icontains=COMMON).count()
    cases = [
        ("first page", history, {}),
        (f"search, 1 word in {rare} runs", f"{history}?q={RARE}", {}),
        (f"search, 1 word in {common} runs", f"{history}?q={COMMON}", {}),
        ("search, 2 words", f"{history}?q={COMMON}+rain", {}),
        ("starred only", f"{history}?starred=on", {}),
        ("page 200 (offset 4,975)", f"{history}?page=200", {}),
        (
            "search via htmx (results only)",
            f"{history}?q={RARE}",
            {"HX-Request": "true", "HX-Target": "history-results"},
        ),
    ]
    print(f"{args.runs:,} runs for one user (made in {made:.1f} s); {args.rounds} requests each")
    print()
    print("| Request | p50 ms | p95 ms | queries | HTML KB |")
    print("|---|---:|---:|---:|---:|")
    for name, url, headers in cases:
        result = measure(client, url, args.rounds, headers)
        print(
            f"| {name} | {result['p50']:.1f} | {result['p95']:.1f} | {result['queries']} "
            f"| {result['bytes'] / 1024:.0f} |"
        )
    if args.plan:
        print_plans(user)


def print_plans(user: User) -> None:
    runs = Run.objects.for_user(user).visible()
    page = HistoryFilter({"q": RARE}).apply(runs).order_by("-created_at", "-pk")[:25]
    for name, query in (("page", runs.order_by("-created_at", "-pk")[:25]), ("search", page)):
        sql, params = query.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", params)
            print(name, [row[-1] for row in cursor.fetchall()])


if __name__ == "__main__":
    main()

"""What each speed-up of the status poll buys, measured in-process (no HTTP, no network).

    .venv/bin/python bench/poll.py

Times the poll of a live run through the whole Django stack (middleware included, Django's
test client, a file SQLite database) as it runs (status key, cached card, plain SQL) and
with each speed-up taken away in turn.
Prints the median time per request of each; the README and runs/poll.py quote them.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="bench-poll-"))
os.environ["STATIC_ROOT"] = os.path.join(os.environ["VAR_DIR"], "static")
os.environ["DJANGO_SETTINGS_MODULE"] = "playground.settings"
os.environ.pop("AIGATEWAY_API_KEY", None)

import django  # noqa: E402

django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import reverse  # noqa: E402

from playground.runs import poll  # noqa: E402
from playground.runs.models import Reference, Run  # noqa: E402

ROUNDS = 2000


def median_us(client: Client, url: str, headers: dict[str, str]) -> float:
    for _ in range(200):  # warm up
        client.get(url, headers=headers)
    times = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        response = client.get(url, headers=headers)
        times.append(time.perf_counter() - start)
        assert response.status_code == 200, response.status_code
    return statistics.median(times) * 1e6


def main() -> None:
    call_command("migrate", verbosity=0)
    # Pages name their static files through the manifest, as `make run` collects them.
    call_command("collectstatic", interactive=False, verbosity=0)
    user = User.objects.create_user("bench", password="bench-pass-123")
    reference = Reference.objects.create(
        user=user, name="r.mp4", file="r.mp4", format_name="mp4", codec="h264",
        width=960, height=720, fps=24, duration=3.5, size=1,
    )  # fmt: skip
    run = Run.objects.create(
        user=user, reference=reference, idempotency_key=user.pk and reference.code,
        prompt="@Video1 at golden hour", status="processing", provider_job_id="job_bench",
    )  # fmt: skip
    url = reverse("run_status", args=[run.code])
    htmx = {"HX-Request": "true"}
    keyed = {**htmx, "X-Status-Key": run.status_key}
    # A host ALLOWED_HOSTS takes; no test environment (it would slow templates down).
    anonymous, signed_in = Client(HTTP_HOST="localhost"), Client(HTTP_HOST="localhost")
    signed_in.force_login(user)
    cached = poll._live_card

    plain_sql = poll._live_row

    def orm_read(code: object) -> tuple[object, ...] | None:
        return Run.objects.filter(code=code).values_list(*poll.LIVE_FIELDS).first()

    results = {}
    for _ in range(2):  # alternated twice: the machine's noise shows in the spread
        results.setdefault("key + cached card + SQL (as shipped)", []).append(
            median_us(anonymous, url, keyed)
        )
        poll._live_row = orm_read
        results.setdefault("... with the ORM instead of SQL", []).append(
            median_us(anonymous, url, keyed)
        )
        poll._live_row = plain_sql
        poll._live_card = cached.__wrapped__  # type: ignore[assignment]
        results.setdefault("... with the card rendered every poll", []).append(
            median_us(anonymous, url, keyed)
        )
        poll._live_card = cached
        results.setdefault("session instead of key (card rendered)", []).append(
            median_us(signed_in, url, htmx)
        )
    for name, values in results.items():
        shown = " / ".join(f"{value:.0f}" for value in values)
        print(f"{name:40s} {shown} µs per poll")


if __name__ == "__main__":
    main()

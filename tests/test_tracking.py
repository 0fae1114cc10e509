"""Runs through the tracker with the simulator misbehaving, end to end.

Each run starts from the Generate form, is driven by the real tracker loop and the real
client over HTTP, and is judged by its status, what its page tells the user, and its money.
Webhooks are off unless a test turns them on, so every poll fault is really met by a poll.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from playground.gateway import Gateway, gateway_from_settings
from playground.kling import MODEL_ID
from playground.runs import steps
from playground.runs.models import Run
from playground.runs.money import usd
from playground.runs.tracker import track_until_idle
from playground.simulator import store
from playground.simulator.engine import sign_webhook
from tests.builders import generate_data
from tests.videos import make_video

pytestmark = pytest.mark.django_db(transaction=True)

PRICE = 168_000  # micro-dollars per second of output


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("tracking-videos")
    return make_video(folder / "small.mp4", width=720, height=720, seconds=3.2)


@pytest.fixture(autouse=True)
def polling_only(settings) -> None:
    """No webhook secret, so no webhooks: the tracker's polls meet every staged fault."""
    settings.AIGATEWAY_WEBHOOK_SECRET = ""


def start_run(client, video: Path, **overrides: object) -> Run:
    response = client.post(reverse("generate"), generate_data(video, **overrides))
    assert response.status_code == 302, response.content.decode()[:2000]
    run = Run.objects.get(code=response["Location"].rstrip("/").rsplit("/", 1)[-1])
    assert run.status == "pending"
    return run


def advance(run: Run) -> Run:
    """One step of the run, as the tracker would take it."""
    client = gateway_from_settings()
    try:
        steps.advance(run, client)
    finally:
        client.close()
    run.refresh_from_db()
    return run


def page_text(client, run: Run) -> str:
    """The run page as text, without the prompt (so a prompt can't pass for a message)."""
    response = client.get(run.get_absolute_url())
    assert response.status_code == 200
    return html.unescape(response.content.decode()).replace(run.prompt, "")


def pending_faults() -> list[dict]:
    path = store.root() / "faults.json"
    return json.loads(path.read_text()) if path.exists() else []


def assert_completed_once(run: Run) -> None:
    run.refresh_from_db()
    assert run.status == "completed", (run.error_message, run.notice)
    assert store.job_ids() == [run.provider_job_id]  # one job, paid once
    assert run.billed_cost_micros == run.duration * PRICE
    assert run.result and default_storage.size(run.result.name) > 0
    assert run.notice == ""


# --- the job fails at the provider -----------------------------------------------------------


def test_it_shows_why_the_provider_failed_a_job_and_bills_nothing(
    gateway, owner_client, small_video
):
    run = start_run(
        owner_client,
        small_video,
        prompt="@Video1 slow pan across a quiet harbour [sim:fail=The model refused]",
    )
    track_until_idle(timeout=30)
    run.refresh_from_db()
    assert run.status == "failed"
    assert run.error_message == "The model refused"
    assert run.billed_cost_micros == 0
    assert store.job_ids() == [run.provider_job_id]
    assert "The model refused" in page_text(owner_client, run)


# --- the gateway refuses the submit ----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "advice"),
    [(402, "out of credits"), (401, "AIGATEWAY_API_KEY")],
    ids=["no-credits", "bad-key"],
)
def test_it_ends_a_refused_run_with_advice_and_no_job(
    gateway, owner_client, small_video, status, advice
):
    store.add_fault(on="submit", status=status, times=5)
    run = start_run(owner_client, small_video)
    track_until_idle(timeout=30)
    run.refresh_from_db()
    assert run.status == "failed"
    assert advice in run.error_message
    assert run.billed_cost_micros == 0
    assert run.provider_job_id == ""
    assert store.job_ids() == []
    assert pending_faults()[0]["times"] == 4  # asked once: not retried
    assert advice in page_text(owner_client, run)


# --- transient faults: the run still completes, with one job ---------------------------------


@pytest.mark.parametrize(
    ("on", "status", "times"),
    [
        ("submit", 429, 1),
        ("submit", 500, 1),
        ("submit", 503, 3),  # outlasts the client's retries: the run tries again later
        ("poll", 429, 1),
        ("poll", 500, 3),
        ("poll", 503, 1),
    ],
)
def test_it_completes_through_transient_faults(
    gateway, owner_client, small_video, on, status, times
):
    store.add_fault(on=on, status=status, retry_after=1 if status == 429 else None, times=times)
    run = start_run(owner_client, small_video)
    track_until_idle(timeout=60)
    assert_completed_once(run)
    assert pending_faults() == []  # every staged fault was met


@pytest.mark.parametrize("times", [1, 2], ids=["client-retries", "run-retries"])
def test_it_submits_once_when_the_answer_to_a_submit_is_lost(
    gateway, owner_client, small_video, settings, times
):
    """The gateway made the job but we timed out: resubmitting must find that same job."""
    settings.AIGATEWAY_TIMEOUT_SECONDS = 1
    store.add_fault(on="submit", delay=2, times=times)
    run = start_run(owner_client, small_video)
    track_until_idle(timeout=60)
    assert_completed_once(run)
    assert pending_faults() == []


def test_it_completes_when_the_result_url_has_expired(gateway, owner_client, small_video):
    store.add_fault(on="job", expired_urls=1)
    run = start_run(owner_client, small_video)
    track_until_idle(timeout=60)
    assert_completed_once(run)
    assert store.SimJob.load(run.provider_job_id).expired_urls_left == 0  # it was handed out


# --- the user cancels ------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["queued", "processing"])
def test_it_cancels_a_submitted_run_at_the_provider(
    gateway, owner_client, small_video, settings, state
):
    if state == "queued":
        settings.SIMULATOR_QUEUED_SECONDS = 60
    store.add_fault(on="job", hang=True)
    run = advance(start_run(owner_client, small_video))
    # Under load the submit's answer can already say "processing" (the queue lasts 0.2 s).
    assert run.status in {"queued", state} and run.provider_job_id
    if state == "processing" and run.status == "queued":
        time.sleep(0.3)
        run = advance(run)
    assert run.status == state

    response = owner_client.post(reverse("run_cancel", args=[run.code]))
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.cancel_requested and run.status == state
    assert "may still bill" in page_text(owner_client, run)

    track_until_idle(timeout=30)
    run.refresh_from_db()
    assert run.status == "cancelled"
    if state == "processing":  # it had started: the provider may bill it, we can't know
        assert run.billing_unknown and run.billed_cost_micros is None
    else:
        assert not run.billing_unknown and run.billed_cost_micros == 0
    assert run.finished_at is not None
    assert store.SimJob.load(run.provider_job_id).phase() == "cancelled"
    assert store.job_ids() == [run.provider_job_id]
    text = page_text(owner_client, run)
    assert "Cancelled" in text
    assert "may still bill" in text


def test_it_cancels_a_pending_run_at_once_without_a_job(gateway, owner_client, small_video):
    run = start_run(owner_client, small_video)
    response = owner_client.post(reverse("run_cancel", args=[run.code]))
    assert response.status_code == 302
    run.refresh_from_db()
    assert run.status == "cancelled"  # at once, before any tracker step
    assert run.billed_cost_micros == 0
    track_until_idle(timeout=10)
    run.refresh_from_db()
    assert run.status == "cancelled" and run.provider_job_id == ""
    assert store.job_ids() == []
    assert "may still bill" not in page_text(owner_client, run)


def test_it_cancels_the_job_a_lost_submit_made(gateway, owner_client, small_video, settings):
    """The gateway made the job but both answers to the submit were lost; then the user
    cancels. That job must not run on at the provider (and be billed) unseen."""
    settings.AIGATEWAY_TIMEOUT_SECONDS = 1
    store.add_fault(on="job", hang=True)
    store.add_fault(on="submit", delay=2, times=2)
    run = start_run(owner_client, small_video)
    client = gateway_from_settings(attempts=2)
    try:
        steps.advance(run, client)  # both attempts time out: the run waits to resubmit
    finally:
        client.close()
    run.refresh_from_db()
    assert run.status == "submitting" and run.notice
    deadline = time.monotonic() + 10
    while not store.job_ids() and time.monotonic() < deadline:
        time.sleep(0.1)
    (job_id,) = store.job_ids()  # the late request made it, as a real gateway would

    owner_client.post(reverse("run_cancel", args=[run.code]))
    track_until_idle(timeout=20)
    run.refresh_from_db()
    assert run.status == "cancelled"
    assert store.job_ids() == [job_id]
    assert store.SimJob.load(job_id).phase() == "cancelled"
    assert "may still bill" in page_text(owner_client, run)


def test_it_ends_a_cancel_the_provider_no_longer_knows(gateway, owner_client, small_video):
    """404 to DELETE (and to POST …/cancel): there is no job left to stop or to wait for."""
    store.add_fault(on="job", hang=True)
    run = advance(start_run(owner_client, small_video))
    assert run.status == "queued"
    store.add_fault(on="cancel", status=404, times=10)
    owner_client.post(reverse("run_cancel", args=[run.code]))
    track_until_idle(timeout=10)
    run.refresh_from_db()
    assert run.status == "cancelled", (run.status, run.notice)
    assert run.billed_cost_micros == 0


def test_it_finishes_a_fetching_run_even_if_a_cancel_was_asked_for(owner_client, small_video):
    """Once the provider has completed (and billed) the job, Cancel is no longer offered,
    and a cancel asked for just before must not stop the result from being copied, even
    with a provider that would answer DELETE on a finished job with 200 (not 409)."""
    run = start_run(owner_client, small_video)
    Run.objects.filter(pk=run.pk).update(
        status="fetching",
        provider_job_id="job_abc123",
        result_url="https://cdn.test/out.mp4",
        submitted_at=timezone.now(),
        billed_seconds=3,
        billed_cost_micros=3 * PRICE,
    )
    run.refresh_from_db()
    assert not run.can_cancel and not run.request_cancel()
    Run.objects.filter(pk=run.pk).update(cancel_requested=True)  # asked while still running

    calls: list[tuple[str, str]] = []
    completed = {
        "id": "job_abc123",
        "status": "completed",
        "result": {"url": "https://cdn.test/out.mp4", "duration": 3.0},
    }

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path))
        if request.url.host == "cdn.test":
            return httpx.Response(200, content=small_video.read_bytes())
        return httpx.Response(200, json=completed)  # DELETE, GET: the job is done

    client = Gateway(
        "https://gateway.test",
        "sk-test",
        model=MODEL_ID,
        attempts=2,
        transport=httpx.MockTransport(handler),
    )
    for _ in range(4):  # the tracker would take these steps, one per claim
        run.refresh_from_db()
        if run.is_final:
            break
        steps.advance(run, client)
    run.refresh_from_db()
    assert run.status == "completed", (run.status, run.cancel_requested, calls)
    assert ("DELETE", "/v1/jobs/job_abc123") not in calls
    assert run.billed_cost_micros == 3 * PRICE


# --- the provider never finishes ---------------------------------------------------------------


def test_it_times_out_a_hanging_job_and_cancels_it(gateway, owner_client, small_video, settings):
    settings.RUN_DEADLINE_MINUTES = 0
    store.add_fault(on="job", hang=True)
    run = start_run(owner_client, small_video)
    track_until_idle(timeout=30)
    run.refresh_from_db()
    assert run.status == "timed_out"
    assert run.billed_cost_micros == 0
    assert run.provider_job_id
    assert store.SimJob.load(run.provider_job_id).phase() == "cancelled"
    assert "did not finish" in run.error_message
    assert run.error_message in page_text(owner_client, run)


# --- webhooks --------------------------------------------------------------------------------

SECRET = "whsec-test-secret"


@pytest.fixture
def queued_run(owner_client, small_video, settings) -> Run:
    """A run the provider has accepted (no simulator involved: the webhook is the news)."""
    settings.AIGATEWAY_WEBHOOK_SECRET = SECRET
    run = start_run(owner_client, small_video)
    now = timezone.now()
    Run.objects.filter(pk=run.pk).update(
        status="queued",
        provider_job_id=f"job_{secrets.token_hex(10)}",
        submitted_at=now,
        next_poll_at=now + timedelta(hours=1),
    )
    run.refresh_from_db()
    return run


def completed_body(run: Run, seconds: float = 3.0) -> bytes:
    return json.dumps(
        {
            "id": run.provider_job_id,
            "status": "completed",
            "result": {"url": "https://cdn.test/out.mp4", "duration": seconds},
        }
    ).encode()


def post_webhook(body: bytes, headers: dict[str, str]):
    """As the gateway calls: no session, no CSRF token."""
    return Client(enforce_csrf_checks=True).post(
        reverse("webhook"), data=body, content_type="application/json", headers=headers
    )


def signed_headers(body: bytes, *, timestamp: int | None = None) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    return {"aig-timestamp": stamp, "aig-signature": sign_webhook(stamp, body)}


@pytest.mark.parametrize("style", ["aig-headers", "x-gateway-signature"])
def test_it_applies_a_signed_webhook(queued_run, style):
    body = completed_body(queued_run, seconds=4.5)
    stamp = str(int(time.time()))
    signature = sign_webhook(stamp, body)
    if style == "aig-headers":
        headers = {"aig-timestamp": stamp, "aig-signature": signature}
    else:
        headers = {"X-Gateway-Signature": f"t={stamp},v1={signature}"}
    response = post_webhook(body, headers)
    assert response.status_code == 200
    queued_run.refresh_from_db()
    assert queued_run.status == "fetching"
    assert queued_run.result_url == "https://cdn.test/out.mp4"
    assert queued_run.billed_seconds == Decimal("4.5")
    assert queued_run.billed_cost_micros == 756_000


def test_it_applies_a_webhook_for_a_failed_job(owner_client, queued_run):
    body = json.dumps(
        {
            "id": queued_run.provider_job_id,
            "status": "failed",
            "error": {"code": "content_policy", "message": "The prompt broke a rule."},
        }
    ).encode()
    assert post_webhook(body, signed_headers(body)).status_code == 200
    queued_run.refresh_from_db()
    assert queued_run.status == "failed"
    assert queued_run.billed_cost_micros == 0
    assert "The prompt broke a rule." in page_text(owner_client, queued_run)


def _unsigned(body: bytes) -> dict[str, str]:
    return {}


def _wrong_secret(body: bytes) -> dict[str, str]:
    import hashlib
    import hmac

    stamp = str(int(time.time()))
    forged = hmac.new(b"not-the-secret", f"{stamp}.".encode() + body, hashlib.sha256)
    return {"aig-timestamp": stamp, "aig-signature": forged.hexdigest()}


def _stale(body: bytes) -> dict[str, str]:
    return signed_headers(body, timestamp=int(time.time()) - 3600)


def _other_body(body: bytes) -> dict[str, str]:
    return signed_headers(body.replace(b"4.5", b"0.1").replace(b"3.0", b"0.1"))


def _stale_combined(body: bytes) -> dict[str, str]:
    stamp = str(int(time.time()) - 3600)
    return {"X-Gateway-Signature": f"t={stamp},v1={sign_webhook(stamp, body)}"}


def _signature_only(body: bytes) -> dict[str, str]:
    return {"aig-signature": sign_webhook(str(int(time.time())), body)}


@pytest.mark.parametrize(
    "make_headers",
    [_unsigned, _wrong_secret, _stale, _other_body, _stale_combined, _signature_only],
    ids=["unsigned", "wrong-secret", "stale", "signed-other-body", "stale-combined", "no-ts"],
)
def test_it_rejects_a_webhook_it_cannot_trust(queued_run, make_headers):
    body = completed_body(queued_run)
    response = post_webhook(body, make_headers(body))
    assert 400 <= response.status_code < 500
    fresh = Run.objects.get(pk=queued_run.pk)
    assert fresh.status == "queued"
    assert fresh.result_url == ""
    assert fresh.billed_cost_micros is None


def test_it_completes_a_run_from_the_simulators_own_webhook(
    gateway, owner_client, small_video, settings
):
    """The simulator signs its webhooks as the gateway does; no poll is needed."""
    settings.AIGATEWAY_WEBHOOK_SECRET = SECRET
    run = advance(start_run(owner_client, small_video))
    assert run.status == "queued"
    deadline = time.monotonic() + 30
    while run.status == "queued" and time.monotonic() < deadline:
        time.sleep(0.1)
        run.refresh_from_db()
    assert run.status == "fetching"  # moved by the webhook alone: nothing polled
    assert run.provider_requests == 1  # the submit
    track_until_idle(timeout=30)
    assert_completed_once(run)


# --- money --------------------------------------------------------------------------------------


def test_it_adds_up_the_history_total_to_the_cent(gateway, owner_client, small_video):
    three = start_run(owner_client, small_video, duration=3)
    four = start_run(owner_client, small_video, duration=4)
    failed = start_run(
        owner_client, small_video, prompt="@Video1 under neon signs [sim:fail=Refused]"
    )
    cancelled = start_run(owner_client, small_video)
    owner_client.post(reverse("run_cancel", args=[cancelled.code]))
    track_until_idle(timeout=60)

    outcomes = {r.pk: r.status for r in Run.objects.all()}
    assert outcomes == {
        three.pk: "completed",
        four.pk: "completed",
        failed.pk: "failed",
        cancelled.pk: "cancelled",
    }
    billed = [r.billed_cost_micros for r in Run.objects.order_by("pk")]
    assert billed == [3 * PRICE, 4 * PRICE, 0, 0]
    total = sum(billed)
    assert total == 1_176_000

    page = owner_client.get(reverse("history")).content.decode()
    shown = re.search(r'id="simulated-total">\s*([^<]+?)\s*<', page)
    assert shown, "the history page shows no total"
    assert shown.group(1) == usd(total) == "$1.176"
    assert Decimal(shown.group(1).lstrip("$").replace(",", "")) * 1_000_000 == total
    for cost in ("$0.504", "$0.672"):
        assert cost in page


@pytest.mark.parametrize(("secret", "expected_gap"), [("", 3.6), (SECRET, 10.0)])
def test_it_polls_a_job_with_a_webhook_only_as_a_fallback(
    gateway, owner_client, small_video, settings, secret, expected_gap
):
    settings.AIGATEWAY_WEBHOOK_SECRET = secret
    settings.SIMULATOR_PROCESSING_SECONDS = 30  # stays in flight while we look
    run = start_run(owner_client, small_video)
    client = gateway_from_settings()
    steps.advance(run, client)  # the submit
    run.refresh_from_db()
    assert run.status == "queued" and run.webhook_expected == bool(secret)
    gap = (run.next_poll_at - run.submitted_at).total_seconds()
    assert gap == pytest.approx(expected_gap, abs=0.05)
    # Each claim schedules the next poll at the same pace.
    Run.objects.filter(pk=run.pk).update(next_poll_at=timezone.now())
    before = timezone.now()
    [claimed] = Run.claim_due(10, "tests")
    assert (claimed.next_poll_at - before).total_seconds() == pytest.approx(expected_gap, abs=1.1)
    assert claimed.provider_requests == run.provider_requests + 1
    client.close()

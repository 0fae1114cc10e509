"""AIgateway's documented contract: webhook event envelopes (signed, fresh, applied once),
the provider's own cost figure, and `304 Not Modified` on a fast poll."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from playground.gateway import Job
from playground.runs import steps
from playground.runs.models import Run, WebhookEvent
from tests.builders import ScriptedProvider, make_run

pytestmark = pytest.mark.django_db

PRICE = 168_000
SECRET = "whsec-contract-test"
JOB = "job_contract1"


@pytest.fixture(autouse=True)
def webhook_secret(settings) -> None:
    settings.AIGATEWAY_WEBHOOK_SECRET = SECRET


@pytest.fixture
def queued(owner, clip) -> Run:
    return make_run(owner, clip, status="queued", provider_job_id=JOB)


def envelope(kind: str = "job.completed", event: str = "evt_1", **data: Any) -> bytes:
    body = {
        "id": event,
        "type": kind,
        "created": int(time.time()),
        "data": {
            "job_id": JOB,
            "model": "kuaishou/kling-video-o1-video-to-video-reference",
            "result_url": "https://cdn.test/out.mp4",
            **data,
        },
    }
    return json.dumps(body).encode()


def deliver(body: bytes, *, timestamp: int | None = None, signature: str | None = None):
    """As the gateway calls: no session, no CSRF token, `aig-*` signature headers."""
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    headers = {"aig-timestamp": stamp, "aig-signature": signature or digest}
    return Client(enforce_csrf_checks=True).post(
        reverse("webhook"), data=body, content_type="application/json", headers=headers
    )


def test_it_applies_an_event_envelope_with_the_providers_cost(owner_client, queued):
    response = deliver(envelope(usage={"cost_cents": 84}))

    assert response.status_code == 200
    queued.refresh_from_db()
    assert queued.status == "fetching"
    assert queued.result_url == "https://cdn.test/out.mp4"
    assert queued.billed_cost_micros == 840_000  # the provider's word, not 3 s × price
    assert queued.cost_source == "provider"
    assert queued.estimated_cost_micros == 3 * PRICE  # our estimate stays beside it
    Run.objects.filter(pk=queued.pk).update(status="completed", finished_at=timezone.now())
    page = owner_client.get(queued.get_absolute_url()).content.decode()
    assert "estimate $0.504, +$0.336" in page


def test_it_applies_a_failed_event(queued):
    body = envelope("job.failed", error={"code": "content_policy", "message": "Refused."})
    assert deliver(body).status_code == 200
    queued.refresh_from_db()
    assert (queued.status, queued.error_message, queued.billed_cost_micros) == (
        "failed",
        "Refused.",
        0,
    )


def test_it_changes_nothing_on_a_replayed_event(queued):
    body = envelope(usage={"cost_cents": 84})
    assert deliver(body).status_code == 200
    Run.objects.filter(pk=queued.pk).update(status="queued", billed_cost_micros=None)

    replay = deliver(body)

    assert replay.status_code == 200 and replay.json()["duplicate"] is True
    queued.refresh_from_db()
    assert queued.status == "queued" and queued.billed_cost_micros is None
    assert WebhookEvent.objects.count() == 1


def test_it_takes_the_providers_figure_from_a_webhook_after_a_poll_computed_one(owner, clip):
    run = make_run(owner, clip, provider_job_id=JOB, billed_cost_micros=3 * PRICE)
    assert run.cost_source == "computed"

    assert deliver(envelope(usage={"cost_cents": 50.4})).status_code == 200

    run.refresh_from_db()
    assert (run.billed_cost_micros, run.cost_source) == (504_000, "provider")


@pytest.mark.parametrize(
    ("timestamp", "signature", "status"),
    [
        (int(time.time()) - 301, None, 400),  # older than 5 minutes
        (None, "not-the-signature", 401),
        (None, "é" * 64, 401),  # non-ASCII: refused, not a 500
    ],
    ids=["stale", "forged", "non-ascii"],
)
def test_it_refuses_an_envelope_it_cannot_trust(queued, timestamp, signature, status):
    response = deliver(envelope(), timestamp=timestamp, signature=signature)
    assert response.status_code == status
    queued.refresh_from_db()
    assert queued.status == "queued"
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize(
    "body",
    [
        {"id": "evt_2", "type": "job.completed", "data": {"model": "x"}},  # no job id
        {"id": 5, "type": "job.completed", "data": {"job_id": JOB}},  # id not a string
        {"type": "job.completed", "data": {"job_id": JOB}},  # no event id
    ],
)
def test_it_answers_400_to_a_malformed_envelope(queued, body):
    assert deliver(json.dumps(body).encode()).status_code == 400


@pytest.mark.parametrize(
    ("record", "micros"),
    [
        ({"usage": {"cost_cents": 84}}, 840_000),
        ({"cost_cents": 50.4}, 504_000),
        ({"cost_usd": 0.84}, 840_000),
        ({"usage": {"cost": 1.5}}, 1_500_000),
        ({"cost": "lots"}, None),
        ({"usage": {"cost_cents": True}}, None),
        ({"cost_cents": float("inf")}, None),
        ({"cost_cents": 1e300}, None),
        ({"cost_cents": -5}, None),
        ({}, None),
    ],
)
def test_it_reads_the_providers_cost_wherever_a_job_record_carries_it(record, micros):
    body = {
        "id": JOB,
        "status": "completed",
        "result": {"url": "https://cdn.test/out.mp4"},
        **record,
    }
    assert Job.from_body(body).cost_micros == micros


def test_it_takes_a_304_to_a_poll_as_unchanged(owner, clip):
    """A poll sooner than 3 s may get `304 Not Modified`: no notice, no 60 s back-off."""
    provider = ScriptedProvider({("GET", f"/v1/jobs/{JOB}"): httpx.Response(304)})
    scheduled = timezone.now() + timedelta(seconds=3.6)  # as the claim left it
    run = make_run(owner, clip, status="processing", provider_job_id=JOB, next_poll_at=scheduled)

    steps.advance(run, provider.gateway())

    run.refresh_from_db()
    assert provider.count("GET", f"/v1/jobs/{JOB}") == 1
    assert run.status == "processing" and run.notice == "" and run.error_message == ""
    assert run.next_poll_at == scheduled  # the claim's 3 s schedule stands


def test_it_sends_webhook_urls_only_when_a_secret_is_set(settings):
    settings.AIGATEWAY_WEBHOOK_SECRET = ""
    assert steps.webhook_url() == ""
    settings.AIGATEWAY_WEBHOOK_SECRET = SECRET
    assert steps.webhook_url().endswith(reverse("webhook"))


def test_it_keeps_a_completed_billed_job_when_a_late_event_says_cancelled(owner, clip):
    run = make_run(
        owner, clip, status="fetching", provider_job_id=JOB, billed_cost_micros=3 * PRICE
    )
    assert deliver(envelope("job.cancelled", event="evt_late")).status_code == 200
    run.refresh_from_db()
    assert run.status == "fetching" and run.billed_cost_micros == 3 * PRICE


def test_it_ignores_an_absurd_duration_in_a_completed_job(queued):
    body = envelope(event="evt_big")
    data = json.loads(body)
    data["data"]["result"] = {"url": "https://cdn.test/out.mp4", "duration": 1e12}
    assert deliver(json.dumps(data).encode()).status_code == 200
    queued.refresh_from_db()
    assert queued.status == "fetching"
    assert queued.billed_seconds == 3  # what was asked for, not a trillion seconds


def test_it_never_moves_a_processing_run_back_to_queued(owner, clip):
    run = make_run(owner, clip, status="processing", provider_job_id=JOB)
    run.apply_job(Job(id=JOB, status="queued"))
    run.refresh_from_db()
    assert run.status == "processing"
    queued = make_run(owner, clip, status="queued", provider_job_id="job_other")
    queued.apply_job(Job(id="job_other", status="processing"))
    queued.refresh_from_db()
    assert queued.status == "processing"  # forward still goes

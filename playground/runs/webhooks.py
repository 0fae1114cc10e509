"""The gateway's job webhooks: verified, then applied like a poll result.

The gateway signs HMAC-SHA256 over "{timestamp}.{raw_body}". Header names vary between
its docs: `aig-signature` + `aig-timestamp`, or `X-Gateway-Signature: t=…,v1=…`; both are
taken. Unsigned, forged or stale calls get a 4xx and change nothing. The body is either
AIgateway's event envelope or the bare job record (see `Job.from_webhook`); an event
already applied (same event id) is answered 200 and changes nothing. The answer comes at
once (a DB write); the result is copied by the tracker, well inside the gateway's 10 s.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.db import transaction
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from playground.gateway import GatewayError, Job
from playground.runs.models import Run, WebhookEvent

TOLERANCE_SECONDS = 300


def signature_parts(request: HttpRequest) -> tuple[str, str]:
    """(timestamp, hex signature) from whichever header style the gateway used."""
    if combined := request.headers.get("X-Gateway-Signature"):
        fields = dict(part.split("=", 1) for part in combined.split(",") if "=" in part)
        return fields.get("t", "").strip(), fields.get("v1", "").strip()
    return (
        request.headers.get("aig-timestamp", "").strip(),
        request.headers.get("aig-signature", "").strip().removeprefix("sha256="),
    )


def verify(timestamp: str, signature: str, body: bytes, *, now: float | None = None) -> str:
    """'' when the call is genuine and fresh, else why not."""
    secret = settings.AIGATEWAY_WEBHOOK_SECRET
    if not secret:
        return "webhooks are not configured"
    if not timestamp or not signature:
        return "missing signature"
    if not (timestamp.isascii() and signature.isascii()):
        return "bad signature"
    try:
        age = abs((now or time.time()) - int(timestamp))
    except ValueError:
        return "bad timestamp"
    if age > TOLERANCE_SECONDS:
        return "stale timestamp"
    expected = hmac.new(
        secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256
    ).hexdigest()
    if not hmac.compare_digest(expected, signature):
        return "bad signature"
    return ""


@login_not_required
@csrf_exempt
@require_POST
def gateway_webhook(request: HttpRequest) -> HttpResponse:
    timestamp, signature = signature_parts(request)
    if problem := verify(timestamp, signature, request.body):
        return JsonResponse({"error": problem}, status=401 if "signature" in problem else 400)
    try:
        event_id, job = Job.from_webhook(json.loads(request.body))
    except (ValueError, GatewayError):
        return JsonResponse({"error": "malformed body"}, status=400)
    with transaction.atomic():
        if event_id:
            _, new = WebhookEvent.objects.get_or_create(
                event_id=event_id[:128], defaults={"job_id": job.id[:128]}
            )
            if not new:
                return JsonResponse({"ok": True, "duplicate": True})
        run = Run.objects.filter(provider_job_id=job.id).first()
        if run is None:
            # 2xx: a job we don't know (deleted run) must not be retried for a day.
            return JsonResponse({"ok": True, "known": False})
        run.apply_job(job)
    return JsonResponse({"ok": True, "status": run.status})

"""The status poll: every open run page asks every 2 s, so this is the hottest endpoint.

It reads the database only (never the provider), is authorised by the run's status key
(no session or user lookup), and answers a live run's card from a per-process cache keyed
by everything the live card shows; the elapsed clock ticks in the browser. A finished run
gets the full final card (and the side panel, out of band) with HTTP 286 to stop polling.
"""

from __future__ import annotations

import hmac
import uuid
from functools import lru_cache

from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling

from playground.runs.models import ACTIVE, Run

CARD = "runs/run_detail.html#status-card"
LIVE_FIELDS = (
    "id",
    "user_id",
    "status",
    "cancel_requested",
    "provider_job_id",
    "notice",
    "created_at",
    "submitted_at",
)


def status_card_response(request: HttpRequest, run: Run) -> HttpResponse:
    """The card alone; once final, also the side panel (out of band: billed cost, share)."""
    card = render(request, CARD, {"run": run})
    if not run.is_final:
        return card
    side = render(request, "runs/run_detail.html#run-side", {"run": run, "oob": True})
    return HttpResponseStopPolling(card.content + side.content)


@lru_cache(maxsize=4096)
def _live_card(
    code: uuid.UUID,
    user_id: int,
    status: str,
    cancel_requested: bool,
    has_job: bool,
    notice: str,
    created_at: object,
    submitted_at: object,
) -> bytes:
    # Rendered without a request: nothing per-user or per-request may appear in it (the
    # cancel form's CSRF token comes from the htmx headers on <body>).
    run = Run(
        code=code,
        user_id=user_id,
        status=status,
        cancel_requested=cancel_requested,
        provider_job_id="known" if has_job else "",
        notice=notice,
        created_at=created_at,
        submitted_at=submitted_at,
    )
    return render_to_string(CARD, {"run": run}).encode()


@login_not_required
@require_GET
@vary_on_headers("HX-Request")
def run_status(request: HttpRequest, code: uuid.UUID) -> HttpResponse:
    key = request.GET.get("key", "")
    if not key:  # an old link or a hand-typed URL: the session decides
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        run = get_object_or_404(
            Run.objects.select_related("reference"), code=code, user=request.user
        )
        return status_card_response(request, run) if request.htmx else redirect(run)
    row = Run.objects.filter(code=code).order_by().values(*LIVE_FIELDS).first()
    if row is None or not hmac.compare_digest(Run.status_key_for(row["user_id"], code), key):
        raise Http404
    if not request.htmx:
        return redirect("run", code=code)
    if row["status"] in ACTIVE:
        return HttpResponse(
            _live_card(
                code,
                row["user_id"],
                row["status"],
                row["cancel_requested"],
                bool(row["provider_job_id"]),
                row["notice"],
                row["created_at"],
                row["submitted_at"],
            )
        )
    run = Run.objects.select_related("reference").get(pk=row["id"])
    return status_card_response(request, run)

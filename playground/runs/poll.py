"""The status poll: every open run page asks every 2 s while its tab is visible, so this is
the hottest endpoint. It reads the database only, never the provider.

Who may see what:
- The live card (status, elapsed clock, notice, the cancel button) is answered to anyone
  holding the run's status key: a timestamped signature minted into the owner's page, sent
  in the `X-Status-Key` header (so access logs never keep it), and expiring after
  STATUS_KEY_MAX_AGE_SECONDS.
- A finished run's card (the player, costs) and its side panel (prompt, share link) need
  the owner's session; the key alone gets a card that says the run finished. Either answer
  carries HTTP 286, which stops the polling.

Three speed-ups, each measured with `bench/poll.py` (the median poll of a live run through
the whole Django stack, in-process, on the 2-core development machine; README "Measured").
As shipped a poll takes about 0.5 ms; each line says what taking one away costs:
- No session or user lookup for a live run: the key authorises it. The session's way
  (which also renders the card) takes 3.3–4.3 ms, against 1.8–1.9 ms with the key.
- The live card is rendered once per state of a run and kept (its clock ticks in the
  browser), so a poll that finds nothing new renders no template: +1.3 ms without it.
- The run's row is read by plain SQL, not the ORM: +0.6 ms through the ORM.
"""

from __future__ import annotations

import uuid
from functools import lru_cache
from typing import Any

from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.db import connection
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling, trigger_client_event

from playground.lib.requests import HtmxRequest
from playground.runs.models import ACTIVE, Run

CARD = "runs/run_detail.html#status-card"
RUN_FINISHED = "run-finished"  # the htmx event a finished card of a batch sends up
LIVE_FIELDS = ("user_id", "status", "cancel_requested", "provider_job_id", "notice")
LIVE_SQL = f"SELECT {', '.join(LIVE_FIELDS)} FROM {Run._meta.db_table} WHERE code = %s"
CODE_FIELD = Run._meta.get_field("code")


def _in_batch(request: HttpRequest) -> bool:
    """A card in a batch page's grid (its `hx-headers` say so): compact, no side panel."""
    return request.headers.get("X-Card-Context") == "batch"


def status_card_response(request: HttpRequest, run: Run) -> HttpResponse:
    """The card alone; once final, also the side panel (out of band: billed cost, share)."""
    compact = _in_batch(request)
    card = render(request, CARD, {"run": run, "compact": compact})
    if not run.is_final:
        return card
    if compact:
        # The batch page's totals listen for this and refresh at once, not at their next poll.
        return trigger_client_event(HttpResponseStopPolling(card.content), RUN_FINISHED)
    side = render(request, "runs/run_detail.html#run-side", {"run": run, "oob": True})
    return HttpResponseStopPolling(card.content + side.content)


@lru_cache(maxsize=4096)
def _live_card(
    code: uuid.UUID, status: str, cancel_requested: bool, has_job: bool, notice: str, compact: bool
) -> bytes:
    """The live card for one state of one run. Rendered without a request, so nothing
    per-user or per-request may appear in it (the cancel form's CSRF token comes from the
    htmx headers on <body>, the status key from the page around the card)."""
    run = Run.objects.get(code=code)
    run.status, run.cancel_requested, run.notice = status, cancel_requested, notice
    return render_to_string(CARD, {"run": run, "compact": compact}).encode()


def _live_row(code: uuid.UUID) -> tuple[Any, ...] | None:
    """The LIVE_FIELDS of a run, by plain SQL: the ORM's query building costs more than
    ten times the query itself here (see the module docstring)."""
    with connection.cursor() as cursor:
        cursor.execute(LIVE_SQL, [CODE_FIELD.get_db_prep_value(code, connection)])
        row: tuple[Any, ...] | None = cursor.fetchone()
        return row


def _key_opens(request: HttpRequest, code: uuid.UUID) -> bool:
    key = request.headers.get("X-Status-Key", "")
    return key.isascii() and Run.code_for_status_key(key) == str(code)


@login_not_required
@require_GET
@vary_on_headers("HX-Request", "X-Status-Key", "X-Card-Context")
def run_status(request: HtmxRequest, code: uuid.UUID) -> HttpResponse:
    if request.htmx and _key_opens(request, code):
        row = _live_row(code)
        if row is None:
            raise Http404
        user_id, status, cancel_requested, provider_job_id, notice = row
        if status in ACTIVE:
            return HttpResponse(
                _live_card(
                    code,
                    status,
                    bool(cancel_requested),
                    bool(provider_job_id),
                    notice,
                    _in_batch(request),
                )
            )
        if request.user.pk != user_id:
            return HttpResponseStopPolling(
                render_to_string("runs/run_finished_elsewhere.html", {"code": code})
            )
    # No key (a hand-typed URL, an old page), or a finished run: the owner's session decides.
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    run = (
        Run.objects.visible().select_related("reference").filter(code=code, user=request.user)
    ).first()
    if run is None:
        raise Http404
    return status_card_response(request, run) if request.htmx else redirect(run)

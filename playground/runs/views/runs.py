"""One run's page and what its owner can do to it."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_POST

from playground.lib.requests import AuthenticatedRequest
from playground.runs.models import Run
from playground.runs.poll import status_card_response
from playground.runs.views.access import get_run

# How far back a finished run still shows in the in-flight answer: long enough for a tab
# that polls it slowly in the background (browsers throttle hidden tabs' timers to once a
# minute) to see the run change from live to finished.
RECENTLY_FINISHED = timedelta(minutes=15)
# A run that finished lately was made at most its deadline (and the submit's retries)
# before: runs made earlier are not read at all.
RECENT_HORIZON = RECENTLY_FINISHED + timedelta(minutes=15)
IN_FLIGHT_LIMIT = 100


@require_GET
def run_detail(request: AuthenticatedRequest, code: str) -> HttpResponse:
    run = get_run(request, code)
    return render(request, "runs/run_detail.html", {"run": run})


@require_POST
def run_cancel(request: AuthenticatedRequest, code: str) -> HttpResponse:
    run = get_run(request, code)
    if run.request_cancel() and not request.htmx:
        messages.info(request, "Cancelling the run." if run.is_active else "Run cancelled.")
    return status_card_response(request, run) if request.htmx else redirect(run)


@require_POST
def run_delete(request: AuthenticatedRequest, code: str) -> HttpResponse:
    run = get_run(request, code)
    if run.is_active:
        messages.error(request, "Cancel the run before deleting it.")
        return redirect(run)
    run.discard()
    messages.info(request, "Run deleted, with its files. Its cost stays in your totals.")
    return redirect("history")


@never_cache
@require_GET
def runs_in_flight(request: AuthenticatedRequest) -> JsonResponse:
    """The user's live runs and the ones that finished lately, for the tab title's count and
    the done notification on every page, a background tab's included: the status cards
    poll only while their tab is visible, this small read keeps going while it is not.

    Two index ranges, live runs first so no number of finished ones crowds them out: the
    live by (user, status) (run_live_idx), the finished among the runs made recently
    enough to have finished lately (run_visible_idx); never all of a user's runs.
    """
    now = timezone.now()
    # By (user, status) alone, so run_live_idx is what answers it: a live run can't be
    # deleted (discard takes final runs only).
    live = Run.objects.for_user(request.user).in_flight().order_by()
    made_since = now - timedelta(minutes=settings.RUN_DEADLINE_MINUTES) - RECENT_HORIZON
    finished = (
        Run.objects.for_user(request.user)
        .visible()
        .filter(created_at__gte=made_since, finished_at__gte=now - RECENTLY_FINISHED)
    )
    rows = [
        *live.values_list("code", "status")[:IN_FLIGHT_LIMIT],
        *finished.order_by("-created_at").values_list("code", "status")[:IN_FLIGHT_LIMIT],
    ]
    runs = [{"url": reverse("run", args=[code]), "status": status} for code, status in rows]
    return JsonResponse({"runs": runs})

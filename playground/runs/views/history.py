"""The history of a user's runs, with their totals."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from playground.lib.requests import AuthenticatedRequest
from playground.runs.limits import budget_left_micros
from playground.runs.models import Run


@require_GET
def history(request: AuthenticatedRequest) -> HttpResponse:
    # Totals count every run, deleted ones too: every cent stays accounted for.
    runs = Run.objects.for_user(request.user)
    page = Paginator(runs.visible().select_related("reference"), 25).get_page(
        request.GET.get("page")
    )
    return render(
        request,
        "runs/history.html",
        {
            "page": page,
            # Real money and the simulator's make-believe are never added together.
            "billed_micros": runs.filter(simulated=False).billed_micros(),
            "simulated_micros": runs.filter(simulated=True).billed_micros(),
            "month_committed_micros": runs.counted_here().this_month().committed_micros(),
            "budget_left": budget_left_micros(request.user),
            "in_flight": runs.in_flight().count(),
        },
    )


# --- Files: every one behind an access check, with Range support for seeking -------------

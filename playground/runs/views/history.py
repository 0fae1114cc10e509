"""The history of a user's runs: search and filters, their totals and spending, and
deleting several runs at once."""

from __future__ import annotations

from urllib.parse import urlsplit

from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers

from playground.lib.requests import AuthenticatedRequest, is_uuid
from playground.runs.history import PER_PAGE, HistoryFilter, safe_next
from playground.runs.models import Run
from playground.runs.spend import spend_chart

RESULTS_TARGET = "history-results"
# A page holds 25 runs; this bounds what one request may name (and its URL's length).
MAX_SELECTED = 100


@require_GET
@vary_on_headers("HX-Request", "HX-Target")
def history(request: AuthenticatedRequest) -> HttpResponse:
    runs = Run.objects.for_user(request.user)
    filters = HistoryFilter(request.GET)
    # The same handful of queries whatever the number of runs: nothing is read per row.
    found = filters.apply(runs.visible()).select_related("reference").order_by("-created_at", "-pk")
    context = {
        "filters": filters,
        "page": Paginator(found, PER_PAGE).get_page(request.GET.get("page")),
        "here": request.get_full_path(),  # where the rows' forms come back to without JS
    }
    # The filter form and the page links swap only the results; a history restore (the
    # back button with htmx's cache missed) needs the whole page.
    if request.htmx.target == RESULTS_TARGET and not request.htmx.history_restore_request:
        return render(request, "runs/history.html#results", {**context, "oob": True})
    chart = spend_chart(request.user)
    totals = runs.totals()
    return render(
        request,
        "runs/history.html",
        {
            **context,
            "chart": chart,
            # Totals count every run, deleted ones too: every cent stays accounted for.
            # Real money and the simulator's make-believe are never added together.
            "billed_micros": totals["billed"],
            "simulated_micros": totals["simulated"],
            "in_flight": totals["in_flight"],
            # The chart has read this month's runs already: what budgets count (runs.limits).
            "month_committed_micros": chart.month_micros,
            "budget_left": chart.budget_left_micros,
        },
    )


@require_http_methods(["GET", "POST"])
def runs_delete(request: AuthenticatedRequest) -> HttpResponse:
    """GET: what deleting the chosen runs would do (a page of its own, so it needs no JS and
    the history's selection form can be a plain GET shared with "Compare"). POST: do it."""
    data = request.POST if request.method == "POST" else request.GET
    history_url = reverse("history")
    back = safe_next(request, data.get("next"), history_url)
    codes = [code for code in data.getlist("run") if is_uuid(code)][:MAX_SELECTED]
    if not codes:
        messages.info(request, "Select the runs to delete first.")
        return redirect(back)
    # Other users' runs don't exist for you: their codes are left out, and if nothing is
    # left, there is nothing here.
    chosen = list(Run.objects.for_user(request.user).visible().filter(code__in=codes))
    if not chosen:
        raise Http404
    deletable = [run for run in chosen if not run.is_active]
    active = [run for run in chosen if run.is_active]
    if request.method == "GET":
        return render(
            request,
            "runs/history_delete.html",
            {"deletable": deletable, "active": active, "back": back},
        )
    deleted = sum(run.discard() for run in deletable)
    if deleted:
        messages.info(
            request,
            f"Deleted {deleted} run{pluralize(deleted)} with {pluralize(deleted, 'its,their')} "
            "files. What they cost stays in your totals.",
        )
    if skipped := len(chosen) - deleted:
        messages.error(
            request,
            f"{skipped} run{pluralize(skipped)} still in progress "
            f"{pluralize(skipped, 'was,were')} not deleted: cancel first, then delete.",
        )
    # Back to the history page it came from (with its filters); a run's own page is gone.
    return redirect(back if urlsplit(back).path == history_url else history_url)

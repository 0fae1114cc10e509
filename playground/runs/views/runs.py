"""One run's page and what its owner can do to it."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from playground.lib.requests import AuthenticatedRequest
from playground.runs.poll import status_card_response
from playground.runs.views.access import get_run


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

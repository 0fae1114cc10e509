""" "Fix it": the page that converts a reference the model would refuse, and its progress.

Both answer htmx with the page's `fix-panel` partial, so the Generate page can open the
fix in a dialog and keep the form as it was typed.
"""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HTMX_STOP_POLLING

from playground.lib.requests import AuthenticatedRequest
from playground.runs.fixes import (
    SEGMENT_MAX_SECONDS,
    SEGMENT_MIN_SECONDS,
    FixRefused,
    plan_for,
    start_fix,
)
from playground.runs.models import Reference, ReferenceFix
from playground.runs.views.access import get_reference


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def reference_fix(request: AuthenticatedRequest, code: str) -> HttpResponse:
    reference = get_reference(request, code)
    start = _seconds(request.POST.get("start"))
    end = _seconds(request.POST.get("end"))
    error = ""
    if request.method == "POST":
        try:
            fix = start_fix(reference, start, end)
        except FixRefused as exc:
            error = str(exc)  # the page comes back with the sliders where they were
        else:
            if request.htmx:
                return _render(request, reference, fix=fix)
            return redirect("fix_progress", fix.code)
    return _render(request, reference, start=start, end=end, error=error)


@require_GET
@vary_on_headers("HX-Request")
def fix_progress(request: AuthenticatedRequest, code: str) -> HttpResponse:
    fix = get_object_or_404(
        ReferenceFix.objects.select_related("source", "result"), code=code, user=request.user
    )
    if request.htmx:  # the progress bar's poll
        response = render(request, "runs/fix.html#fix-progress", {"fix": fix})
        if fix.is_final:
            response.status_code = HTMX_STOP_POLLING
        return response
    return _render(request, fix.source, fix=fix)


def _render(
    request: AuthenticatedRequest,
    reference: Reference,
    *,
    fix: ReferenceFix | None = None,
    start: float | None = None,
    end: float | None = None,
    error: str = "",
) -> HttpResponse:
    # The sliders: where they were when the form comes back with an error, else the start.
    start = start if start is not None else 0.0
    end = end if end is not None else min(reference.duration, SEGMENT_MAX_SECONDS)
    context = {
        "reference": reference,
        "plan": plan_for(reference),
        "fix": fix,
        "error": error,
        "segment_min": SEGMENT_MIN_SECONDS,
        "segment_max": SEGMENT_MAX_SECONDS,
        "start": start,
        "end": end,
        "length": end - start,
        "copies": reference.fixes.all(),
    }
    template = "runs/fix.html#fix-panel" if request.htmx else "runs/fix.html"
    return render(request, template, context)


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None

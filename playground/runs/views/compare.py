"""Compare two to four finished runs: synced playback, and what differs between them."""

from __future__ import annotations

import uuid

from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from playground.lib.requests import AuthenticatedRequest, is_uuid
from playground.runs.compare import MAX_COMPARED, MIN_COMPARED, Comparison
from playground.runs.models import Run


@require_GET
def compare(request: AuthenticatedRequest) -> HttpResponse:
    # Canonical and once each, in the order picked (an upper-case or hyphen-less code is
    # the same run); one past the most is enough to say there are too many.
    codes: list[str] = []
    for code in request.GET.getlist("run"):
        if not is_uuid(code):
            raise Http404
        if (canonical := str(uuid.UUID(code))) not in codes:
            codes.append(canonical)
        if len(codes) > MAX_COMPARED:
            break
    if not MIN_COMPARED <= len(codes) <= MAX_COMPARED:
        return _cannot(
            request,
            f"Pick {MIN_COMPARED} to {MAX_COMPARED} finished runs to compare "
            f"(you picked {len(codes) if len(codes) <= MAX_COMPARED else 'more'}).",
        )
    found = {
        str(run.code): run
        for run in Run.objects.for_user(request.user)
        .visible()
        .filter(code__in=codes)
        .select_related("reference")
        .prefetch_related("run_images__reference")
    }
    if len(found) != len(codes):
        raise Http404  # someone else's, deleted or made up: not yours to see
    if unfinished := [run for run in found.values() if not run.has_result]:
        return _cannot(
            request,
            f"Only finished runs with a result can be compared; {len(unfinished)} of the "
            "runs you picked has none yet.",
        )
    return render(
        request, "runs/compare.html", {"comparison": Comparison([found[c] for c in codes])}
    )


def _cannot(request: AuthenticatedRequest, problem: str) -> HttpResponse:
    return render(request, "runs/compare.html", {"problem": problem}, status=400)

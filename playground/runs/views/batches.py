"""A batch: the runs one press of Generate made, side by side, each card polling on its own."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseStopPolling

from playground.lib.requests import AuthenticatedRequest
from playground.runs.models import Batch


@require_GET
@vary_on_headers("HX-Request")
def batch_detail(request: AuthenticatedRequest, code: str) -> HttpResponse:
    batch = get_object_or_404(Batch, code=code, user=request.user)
    runs = list(batch.runs.visible().select_related("reference").order_by("pk"))
    totals = batch.totals(runs)
    context = {"batch": batch, "runs": runs, "totals": totals}
    if request.htmx and request.htmx.target == "batch-totals":
        response = render(request, "runs/batch.html#batch-totals", context)
        if totals.active:
            return response
        # Every run is final: the totals can't change, so stop asking; and the share panel,
        # rendered while nothing had finished, now offers a link (out of band).
        share = render_to_string(
            "runs/share_links.html",
            {"batch": batch, "run": None, "oob": True},
            request=request,
        )
        return HttpResponseStopPolling(response.content + share.encode())
    return render(request, "runs/batch.html", context)

"""The reference library: the user's uploaded videos (and images), reusable across runs."""

from __future__ import annotations

from django.contrib import messages
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.views.decorators.http import require_GET, require_POST

from playground.lib.requests import AuthenticatedRequest
from playground.runs.models import Reference, ReferenceKind
from playground.runs.references import storage_use
from playground.runs.views.access import get_reference


@require_GET
def references(request: AuthenticatedRequest) -> HttpResponse:
    mine = Reference.objects.filter(user=request.user)
    items = (
        mine.filter(kind=ReferenceKind.VIDEO)
        .select_related("derived_from")  # "Fixed copy of …"
        .annotate(run_count=Count("runs"))
    )
    images = mine.filter(kind=ReferenceKind.IMAGE).annotate(
        run_count=Count("image_runs", distinct=True)
    )
    return render(
        request,
        "runs/references.html",
        {"references": items, "images": images, "storage": storage_use(request.user)},
    )


@require_POST
def reference_delete(request: AuthenticatedRequest, code: str) -> HttpResponse:
    reference = get_reference(request, code)
    # An image is cited through RunImage (RESTRICT, like a run's video): count those too.
    used = reference.runs.count() + reference.image_runs.count()
    if used:
        messages.error(
            request,
            f"“{reference.name}” is used by {used} run{pluralize(used)}; "
            "delete those runs first, then the reference.",
        )
    else:
        reference.delete()
        messages.info(request, f"Deleted “{reference.name}” and its files.")
    return redirect("references")

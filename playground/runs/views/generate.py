"""The Generate form: a new run from a prompt, a reference and settings."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from playground import kling
from playground.lib.requests import AuthenticatedRequest
from playground.runs.forms import GenerateForm
from playground.runs.limits import LimitReached, budget_left_micros, create_run
from playground.runs.models import Run
from playground.runs.money import cost_of_seconds
from playground.runs.tracker import ensure_tracker
from playground.runs.views.access import is_uuid


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def generate(request: AuthenticatedRequest) -> HttpResponse:
    if request.method == "POST":
        # A double-click or a resubmitted form lands on the run it already made.
        key = request.POST.get("idempotency_key", "")
        existing = (
            Run.objects.filter(user=request.user, idempotency_key=key).first()
            if (is_uuid(key))
            else None
        )
        if existing:
            return redirect(existing)
        form = GenerateForm(request.POST, request.FILES, user=request.user)
        if form.is_valid():
            try:
                run = _create_run(request, form)
            except LimitReached as exc:  # another request got there first
                form.add_error(None, str(exc))
            else:
                if request.htmx:  # the form posts through htmx for its upload progress bar
                    return HttpResponseClientRedirect(run.get_absolute_url())
                return redirect(run)
    else:
        form = GenerateForm(user=request.user, initial=_initial_from(request))
    # What the user picked, if it is one of the model's durations (the form says why not).
    picked = str(form["duration"].value())
    duration = int(picked) if picked in DURATION_CHOICES else kling.DEFAULT_DURATION
    return render(
        request,
        "runs/generate.html",
        {
            "form": form,
            "price_micros": cost_of_seconds(1),
            "estimate_micros": cost_of_seconds(duration),
            "budget_left": budget_left_micros(request.user),
            "recent": Run.objects.for_user(request.user).visible().select_related("reference")[:4],
        },
    )


DURATION_CHOICES = {str(n) for n in kling.DURATIONS}


def _initial_from(request: AuthenticatedRequest) -> dict:
    """ "Try again" links prefill the form from an earlier run of the user's."""
    reference = request.GET.get("reference")
    if reference and is_uuid(reference):
        return {"reference": reference}
    code = request.GET.get("from")
    if not code or not is_uuid(code):
        return {}
    run = Run.objects.visible().filter(code=code, user=request.user).first()
    if run is None or run.reference is None:
        return {}
    return {
        "prompt": run.prompt,
        "duration": run.duration,
        "aspect_ratio": run.aspect_ratio,
        "keep_audio": run.keep_audio,
        "reference": run.reference.code,
    }


def _create_run(request: AuthenticatedRequest, form: GenerateForm) -> Run:
    data = form.cleaned_data
    run = create_run(
        request.user,
        reference=form.stored_reference,
        idempotency_key=data["idempotency_key"],
        prompt=data["prompt"],
        duration=data["duration"],
        aspect_ratio=data["aspect_ratio"],
        keep_audio=data["keep_audio"],
        estimated_cost_micros=cost_of_seconds(data["duration"]),
    )
    ensure_tracker()
    return run

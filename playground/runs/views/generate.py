"""The Generate form: a new run from a prompt, a reference and settings."""

from __future__ import annotations

from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from playground import kling
from playground.lib.requests import AuthenticatedRequest, is_uuid
from playground.runs import batches
from playground.runs.forms import GenerateForm
from playground.runs.limits import LimitReached, budget_left_micros, create_batch, create_run
from playground.runs.models import Batch, Run
from playground.runs.money import cost_of_seconds


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def generate(request: AuthenticatedRequest) -> HttpResponse:
    if request.method == "POST":
        # A double-click or a resubmitted form lands on what it already made.
        if existing := _made_by(request, request.POST.get("idempotency_key", "")):
            return redirect(existing)
        form = GenerateForm(request.POST, request.FILES, user=request.user)
        if form.is_valid():
            try:
                made = _create(request, form)
            except LimitReached as exc:  # another request got there first
                form.add_error(None, str(exc))
            else:
                if request.htmx:  # the form posts through htmx for its upload progress bar
                    return HttpResponseClientRedirect(made.get_absolute_url())
                return redirect(made)
    else:
        form = GenerateForm(user=request.user, initial=_initial_from(request))
    # What the user picked, if it is one of the model's durations (the form says why not).
    picked = str(form["duration"].value())
    duration = int(picked) if picked in DURATION_CHOICES else kling.DEFAULT_DURATION
    planned = form.planned or [batches.Variant(prompt="", duration=duration)]
    return render(
        request,
        "runs/generate.html",
        {
            "form": form,
            "price_micros": cost_of_seconds(1),
            "estimate_micros": batches.estimated_micros(planned),
            "planned_runs": len(planned),
            "max_batch_runs": batches.MAX_BATCH_RUNS,
            "budget_left": budget_left_micros(request.user),
            "recent": Run.objects.for_user(request.user).visible().select_related("reference")[:4],
            "recent_prompts": Run.objects.for_user(request.user).visible().recent_prompts(),
        },
    )


DURATION_CHOICES = {str(n) for n in kling.DURATIONS}


def _made_by(request: AuthenticatedRequest, key: str) -> Run | Batch | None:
    """The run or batch an earlier post of this same form made, if any."""
    if not is_uuid(key):
        return None
    return (
        Run.objects.filter(user=request.user, idempotency_key=key).first()
        or Batch.objects.filter(user=request.user, idempotency_key=key).first()
    )


def _initial_from(request: AuthenticatedRequest) -> dict:
    """ "Remix" links prefill the form from an earlier run of the user's."""
    reference = request.GET.get("reference")
    if reference and is_uuid(reference):
        return {"reference": reference}
    image = request.GET.get("image")  # the library's "Use for a new run" on an image
    if image and is_uuid(image):
        return {"images": [image]}
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
        "parent": run.code,
        # In their order: the picker lists chosen images first, @Image1 first.
        "images": [
            str(image.reference.code) for image in run.run_images.select_related("reference")
        ],
    }


def _create(request: AuthenticatedRequest, form: GenerateForm) -> Run | Batch:
    """One run, or a batch when the form fans out into several."""
    data = form.cleaned_data
    common = {
        "reference": form.stored_reference,
        "aspect_ratio": data["aspect_ratio"],
        "keep_audio": data["keep_audio"],
        "parent": form.parent_run,
    }
    made: Run | Batch
    if len(form.planned) > 1:
        made = create_batch(
            request.user,
            form.planned,
            idempotency_key=data["idempotency_key"],
            images=form.stored_images,
            **common,
        )
    else:
        made = create_run(
            request.user,
            idempotency_key=data["idempotency_key"],
            prompt=data["prompt"],
            duration=data["duration"],
            estimated_cost_micros=cost_of_seconds(data["duration"]),
            images=form.stored_images,
            **common,
        )
    return made

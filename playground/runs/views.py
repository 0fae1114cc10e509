"""Thin views: parse, check access, call a model method, render or redirect."""

from __future__ import annotations

import uuid

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.core.paginator import Paginator
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import pluralize
from django.views.decorators.http import (
    require_GET,
    require_http_methods,
    require_POST,
    require_safe,
)
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import HttpResponseClientRedirect

from playground import kling
from playground.lib.media import media_path
from playground.lib.ranged import ranged_file_response
from playground.lib.requests import AuthenticatedRequest, HtmxRequest
from playground.runs.forms import GenerateForm
from playground.runs.limits import LimitReached, budget_left_micros, create_run
from playground.runs.models import Reference, Run
from playground.runs.money import cost_of_seconds
from playground.runs.poll import status_card_response
from playground.runs.references import reference_for_token, storage_use
from playground.runs.tracker import ensure_tracker


def _get_run(request: AuthenticatedRequest, code: str) -> Run:
    """The signed-in user's run, or 404 (never 403: others' runs don't exist for you)."""
    return get_object_or_404(
        Run.objects.visible().select_related("reference"), code=code, user=request.user
    )


def _get_shared_run(token: str) -> Run:
    return get_object_or_404(
        Run.objects.visible().select_related("reference"), share_token=token, status="completed"
    )


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
def generate(request: AuthenticatedRequest) -> HttpResponse:
    if request.method == "POST":
        # A double-click or a resubmitted form lands on the run it already made.
        key = request.POST.get("idempotency_key", "")
        existing = (
            Run.objects.filter(user=request.user, idempotency_key=key).first()
            if (_is_uuid(key))
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
    if reference and _is_uuid(reference):
        return {"reference": reference}
    code = request.GET.get("from")
    if not code or not _is_uuid(code):
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


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


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


@require_GET
def run_detail(request: AuthenticatedRequest, code: str) -> HttpResponse:
    run = _get_run(request, code)
    return render(request, "runs/run_detail.html", {"run": run})


@require_POST
def run_cancel(request: AuthenticatedRequest, code: str) -> HttpResponse:
    run = _get_run(request, code)
    if run.request_cancel() and not request.htmx:
        messages.info(request, "Cancelling the run." if run.is_active else "Run cancelled.")
    ensure_tracker()
    return status_card_response(request, run) if request.htmx else redirect(run)


@require_POST
def run_share(request: AuthenticatedRequest, code: str) -> HttpResponse:
    run = _get_run(request, code)
    if not run.has_result:
        raise Http404
    run.share()
    messages.success(request, "Share link created. Anyone with the link can watch this run.")
    return redirect(run)


@require_POST
def run_unshare(request: AuthenticatedRequest, code: str) -> HttpResponse:
    run = _get_run(request, code)
    run.revoke_share()
    messages.info(request, "Share link revoked. The old link now shows nothing.")
    return redirect(run)


@require_POST
def run_delete(request: AuthenticatedRequest, code: str) -> HttpResponse:
    run = _get_run(request, code)
    if run.is_active:
        messages.error(request, "Cancel the run before deleting it.")
        return redirect(run)
    run.discard()
    messages.info(request, "Run deleted, with its files. Its cost stays in your totals.")
    return redirect("history")


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


def _serve(
    request: HttpRequest, name: str, *, content_type: str, download_as: str | None = None
) -> HttpResponseBase:
    if not name:
        raise Http404
    path = media_path(name)
    if not path.is_file():
        raise Http404
    return ranged_file_response(
        request,
        path,
        content_type=content_type,
        filename=download_as,
        as_attachment=bool(download_as),
    )


@require_GET
def references(request: AuthenticatedRequest) -> HttpResponse:
    items = Reference.objects.filter(user=request.user).annotate(run_count=Count("runs"))
    return render(
        request,
        "runs/references.html",
        {"references": items, "storage": storage_use(request.user)},
    )


@require_POST
def reference_delete(request: AuthenticatedRequest, code: str) -> HttpResponse:
    reference = get_object_or_404(Reference, code=code, user=request.user)
    used = reference.runs.count()
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


@require_safe
def run_result(request: AuthenticatedRequest, code: str) -> HttpResponseBase:
    run = _get_run(request, code)
    download = f"kling-{run.code}.mp4" if "download" in request.GET else None
    return _serve(request, run.result.name, content_type="video/mp4", download_as=download)


@require_safe
def run_poster(request: AuthenticatedRequest, code: str) -> HttpResponseBase:
    run = _get_run(request, code)
    name = run.poster.name or (run.reference.poster.name if run.reference else "")
    return _serve(request, name, content_type="image/jpeg")


@require_safe
def reference_video(request: AuthenticatedRequest, code: str) -> HttpResponseBase:
    reference = get_object_or_404(Reference, code=code, user=request.user)
    name = reference.preview.name or reference.file.name
    return _serve(request, name, content_type="video/mp4")


@require_safe
def reference_poster(request: AuthenticatedRequest, code: str) -> HttpResponseBase:
    reference = get_object_or_404(Reference, code=code, user=request.user)
    return _serve(request, reference.poster.name, content_type="image/jpeg")


@login_not_required
@require_safe
def reference_download(request: HtmxRequest, token: str) -> HttpResponseBase:
    """The provider fetches the reference here: a signed, expiring, unguessable URL."""
    reference = reference_for_token(token)
    if reference is None:
        raise Http404
    content_type = "video/quicktime" if reference.file.name.endswith(".mov") else "video/mp4"
    return _serve(request, reference.file.name, content_type=content_type)


@login_not_required
@require_GET
def shared_run(request: HtmxRequest, token: str) -> HttpResponse:
    run = _get_shared_run(token)
    return render(request, "runs/shared.html", {"run": run, "token": token})


@login_not_required
@require_safe
def shared_result(request: HtmxRequest, token: str) -> HttpResponseBase:
    run = _get_shared_run(token)
    return _serve(request, run.result.name, content_type="video/mp4")


@login_not_required
@require_safe
def shared_poster(request: HtmxRequest, token: str) -> HttpResponseBase:
    run = _get_shared_run(token)
    return _serve(request, run.poster.name, content_type="image/jpeg")

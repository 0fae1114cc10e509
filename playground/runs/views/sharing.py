"""Share links: a finished run anyone with the link can watch, without signing in."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST, require_safe

from playground.lib.requests import AuthenticatedRequest, HtmxRequest
from playground.runs.models import Run
from playground.runs.views.access import get_run
from playground.runs.views.files import serve


def _get_shared_run(token: str) -> Run:
    return get_object_or_404(
        Run.objects.visible().select_related("reference"), share_token=token, status="completed"
    )


@require_POST
def run_share(request: AuthenticatedRequest, code: str) -> HttpResponse:
    run = get_run(request, code)
    if not run.has_result:
        raise Http404
    run.share()
    messages.success(request, "Share link created. Anyone with the link can watch this run.")
    return redirect(run)


@require_POST
def run_unshare(request: AuthenticatedRequest, code: str) -> HttpResponse:
    run = get_run(request, code)
    run.revoke_share()
    messages.info(request, "Share link revoked. The old link now shows nothing.")
    return redirect(run)


@login_not_required
@require_GET
def shared_run(request: HtmxRequest, token: str) -> HttpResponse:
    run = _get_shared_run(token)
    return render(request, "runs/shared.html", {"run": run, "token": token})


@login_not_required
@require_safe
def shared_result(request: HtmxRequest, token: str) -> HttpResponseBase:
    run = _get_shared_run(token)
    return serve(request, run.result.name, content_type="video/mp4")


@login_not_required
@require_safe
def shared_poster(request: HtmxRequest, token: str) -> HttpResponseBase:
    run = _get_shared_run(token)
    return serve(request, run.poster.name, content_type="image/jpeg")

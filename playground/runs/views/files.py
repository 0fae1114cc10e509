"""Files: every one behind an access check, with Range support for seeking."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_safe

from playground.lib.media import media_path
from playground.lib.ranged import ranged_file_response
from playground.lib.requests import AuthenticatedRequest, HtmxRequest
from playground.runs.references import reference_for_token
from playground.runs.views.access import get_reference, get_run


def serve(
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


@require_safe
def run_result(request: AuthenticatedRequest, code: str) -> HttpResponseBase:
    run = get_run(request, code)
    download = f"kling-{run.code}.mp4" if "download" in request.GET else None
    return serve(request, run.result.name, content_type="video/mp4", download_as=download)


@require_safe
def run_poster(request: AuthenticatedRequest, code: str) -> HttpResponseBase:
    run = get_run(request, code)
    name = run.poster.name or (run.reference.poster.name if run.reference else "")
    return serve(request, name, content_type="image/jpeg")


@require_safe
def reference_video(request: AuthenticatedRequest, code: str) -> HttpResponseBase:
    reference = get_reference(request, code)
    name = reference.preview.name or reference.file.name
    return serve(request, name, content_type="video/mp4")


@require_safe
def reference_poster(request: AuthenticatedRequest, code: str) -> HttpResponseBase:
    reference = get_reference(request, code)
    return serve(request, reference.poster.name, content_type="image/jpeg")


@login_not_required
@require_safe
def reference_download(request: HtmxRequest, token: str) -> HttpResponseBase:
    """The provider fetches the reference here: a signed, expiring, unguessable URL."""
    reference = reference_for_token(token)
    if reference is None:
        raise Http404
    content_type = "video/quicktime" if reference.file.name.endswith(".mov") else "video/mp4"
    return serve(request, reference.file.name, content_type=content_type)

"""Files: every one behind an access check, with Range support for seeking."""

from __future__ import annotations

from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpRequest
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_safe

from playground.lib.media import media_path
from playground.lib.ranged import ranged_file_response
from playground.lib.requests import AuthenticatedRequest, HtmxRequest
from playground.lib.thumbnails import thumbnail
from playground.runs.models import Reference
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


@require_safe
def reference_image(request: AuthenticatedRequest, code: str) -> HttpResponseBase:
    """An image reference at full size, for its owner (pages show its poster thumbnail)."""
    reference = get_reference(request, code)
    if not reference.is_image:
        raise Http404
    return serve(request, reference.file.name, content_type=content_type_of(reference))


@login_not_required
@require_safe
def reference_download(request: HtmxRequest, token: str) -> HttpResponseBase:
    """The provider fetches the reference here: a signed, expiring, unguessable URL."""
    reference = reference_for_token(token)
    if reference is None:
        raise Http404
    return serve(request, reference.file.name, content_type=content_type_of(reference))


def content_type_of(reference: Reference) -> str:
    """What a reference's original file is, by the name store_upload / store_image gave it."""
    suffix = reference.file.name.rsplit(".", 1)[-1].lower()
    return {"mov": "video/quicktime", "jpg": "image/jpeg", "png": "image/png"}.get(
        suffix, "video/mp4"
    )


# --- Thumbnails: posters at the size lists show them ------------------------------------

# A reference's poster never changes, nor does a finished run's; a run still without a
# poster of its own shows its reference's until it completes, so that answer is kept briefly.
THUMB_MAX_AGE = 86400
FALLBACK_THUMB_MAX_AGE = 60


@require_safe
def run_thumb(request: AuthenticatedRequest, code: str) -> HttpResponseBase:
    run = get_run(request, code)
    own = run.poster.name
    name = own or (run.reference.poster.name if run.reference else "")
    return serve_thumbnail(request, name, max_age=THUMB_MAX_AGE if own else FALLBACK_THUMB_MAX_AGE)


@require_safe
def reference_thumb(request: AuthenticatedRequest, code: str) -> HttpResponseBase:
    reference = get_reference(request, code)
    return serve_thumbnail(request, reference.poster.name, max_age=THUMB_MAX_AGE)


def serve_thumbnail(request: HttpRequest, name: str, *, max_age: int) -> HttpResponseBase:
    if not name:
        raise Http404
    poster = media_path(name)
    if not poster.is_file():
        raise Http404
    try:
        path = thumbnail(poster)
    except OSError:  # a poster Pillow can't read (or a full disk): the poster itself will do
        path = poster
    response = ranged_file_response(request, path, content_type="image/jpeg")
    response["Cache-Control"] = f"private, max-age={max_age}"
    return response

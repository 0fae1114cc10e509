"""Files: every one behind an access check, with Range support for seeking.

On local files the view answers with the file (lib/ranged.py); with a bucket, it redirects
to a presigned URL of the object that expires after MEDIA_URL_MAX_AGE_SECONDS, and the
bucket answers Range requests itself. Either way the access check comes first.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.core.files.storage import default_storage
from django.http import Http404, HttpRequest, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.views.decorators.http import require_safe

from playground.lib import media
from playground.lib.ranged import ranged_stored_response
from playground.lib.requests import AuthenticatedRequest, HtmxRequest
from playground.lib.thumbnails import known_thumbnail, thumbnail
from playground.runs.references import content_type_of, reference_for_token
from playground.runs.views.access import get_reference, get_run


def serve(
    request: HttpRequest, name: str, *, content_type: str, download_as: str | None = None
) -> HttpResponseBase:
    if not name or not default_storage.exists(name):
        raise Http404
    if not media.is_local():
        return _redirect_to_object(name, content_type=content_type, download_as=download_as)
    return ranged_stored_response(
        request,
        name,
        content_type=content_type,
        filename=download_as,
        as_attachment=bool(download_as),
    )


def _redirect_to_object(
    name: str, *, content_type: str, download_as: str | None = None
) -> HttpResponseBase:
    """302 to the object in the bucket, signed to answer with our Content-Type (and
    Content-Disposition). The redirect may be reused only while its URL is surely valid."""
    seconds = settings.MEDIA_URL_MAX_AGE_SECONDS
    url = media.object_url(
        name, seconds=seconds, content_type=content_type, download_as=download_as
    )
    response = HttpResponseRedirect(url)
    response["Cache-Control"] = f"private, max-age={seconds // 2}"
    return response


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
    shown = known_thumbnail(name)
    if shown is None:
        if not default_storage.exists(name):
            raise Http404
        try:
            shown = thumbnail(name)
        except OSError:  # a poster Pillow can't read (or a full disk): the poster will do
            shown = name
    if not media.is_local():
        # A redirect kept for a day would outlive its presigned URL: it keeps the shorter age.
        return _redirect_to_object(shown, content_type="image/jpeg")
    response = ranged_stored_response(request, shown, content_type="image/jpeg")
    response["Cache-Control"] = f"private, max-age={max_age}"
    return response

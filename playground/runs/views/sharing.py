"""Share links: a finished run, or every completed variant of a batch, that anyone holding
the link can watch without signing in, until the link expires or its owner revokes it.

The owner's side (create, list, revoke) needs the session. The public side is found by
the link's token alone, never by a run's code; an expired or revoked link answers 404
for the page and for every file behind it.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_not_required
from django.http import Http404, HttpResponse, HttpResponseBadRequest
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.crypto import constant_time_compare
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import cache_control
from django.views.decorators.clickjacking import xframe_options_exempt
from django.views.decorators.http import require_GET, require_POST, require_safe

from playground.lib import video
from playground.lib.requests import AuthenticatedRequest, HtmxRequest
from playground.runs.models import SHARE_EXPIRIES, Batch, Run, ShareLink
from playground.runs.references import public_base_url
from playground.runs.views.access import get_run
from playground.runs.views.files import serve

PANEL = "runs/share_links.html"
# Posters are written at most this many pixels on their long side (video.write_jpeg).
POSTER_MAX_SIDE = 640
OG_TITLE_CHARS = 70


# --- The owner's side -----------------------------------------------------------------------


def _expiry(request: AuthenticatedRequest) -> tuple[str, timedelta | None] | None:
    """(label, timedelta or None) of the expiry the form asked for; None if it is not one
    of the four the form offers."""
    return SHARE_EXPIRIES.get(request.POST.get("expires", ""))


def _created(request: AuthenticatedRequest, link: ShareLink, what: str) -> None:
    until = (
        f"until {link.expires_at:%Y-%m-%d %H:%M} UTC" if link.expires_at else "until you revoke it"
    )
    messages.success(request, f"Share link created. Anyone with the link can watch {what} {until}.")


@require_POST
def run_share(request: AuthenticatedRequest, code: str) -> HttpResponse:
    run = get_run(request, code)
    if not run.has_result:
        raise Http404
    expiry = _expiry(request)
    if expiry is None:
        return HttpResponseBadRequest("Choose when the link expires.")
    link = ShareLink.create(request.user, run=run, expires_in=expiry[1])
    if request.htmx:
        return render(request, PANEL, {"run": run, "new_link": link})
    _created(request, link, "this run")
    return redirect(run)


@require_POST
def batch_share(request: AuthenticatedRequest, code: str) -> HttpResponse:
    batch = get_object_or_404(Batch, code=code, user=request.user)
    if not batch.shareable_runs().exists():
        raise Http404
    expiry = _expiry(request)
    if expiry is None:
        return HttpResponseBadRequest("Choose when the link expires.")
    link = ShareLink.create(request.user, batch=batch, expires_in=expiry[1])
    if request.htmx:
        return render(request, PANEL, {"batch": batch, "new_link": link})
    _created(request, link, "every finished variant of this batch")
    return redirect(batch)


@require_POST
def share_revoke(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    link = get_object_or_404(
        ShareLink.objects.select_related("run", "batch"), pk=pk, user=request.user
    )
    link.revoke()
    if request.htmx:
        return render(request, PANEL, {"run": link.run, "batch": link.batch})
    messages.info(request, "Share link revoked. It now opens nothing.")
    back = request.POST.get("next", "")
    if url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
        return redirect(back)
    return redirect(link.run or link.batch or "share_links")


@require_GET
def share_links(request: AuthenticatedRequest) -> HttpResponse:
    """The owner's links: live ones, or with ?all=1 also the expired and revoked."""
    show_all = request.GET.get("all") == "1"
    links = ShareLink.objects.filter(user=request.user).select_related("run", "batch")
    if not show_all:
        links = links.live()
    rows = [(link, _cover(link)) for link in links.prefetch_related("batch__runs")]
    return render(request, "runs/shares.html", {"rows": rows, "show_all": show_all})


def _cover(link: ShareLink) -> Run | None:
    """The run whose poster and prompt stand for the link in the owner's list."""
    if link.run is not None:
        return link.run
    if link.batch is not None:
        pictured = [run for run in link.batch.runs.all() if run.poster]
        return min(pictured, key=lambda run: (run.created_at, run.pk), default=None)
    return None


# --- The public side ------------------------------------------------------------------------


def _live_link(token: str) -> ShareLink:
    return get_object_or_404(ShareLink.objects.live().select_related("run", "batch"), token=token)


def _shared_runs(link: ShareLink) -> list[Run]:
    runs = list(link.shared_runs())
    if not runs:  # the run was deleted, or (a batch) none of its variants has finished
        raise Http404
    return runs


def _file_run(token: str, variant: str | None) -> Run:
    """The run whose file a shared page asks for: a run link's own run, or (by its
    variant key) one of a batch link's completed variants."""
    link = _live_link(token)
    if variant is None:
        if link.run_id is None:
            raise Http404
        return get_object_or_404(link.shared_runs())
    if link.batch_id is None:
        raise Http404
    for run in link.shared_runs():  # a batch has at most MAX_BATCH_RUNS
        if constant_time_compare(link.variant_key(run), variant):
            return run
    raise Http404


def _absolute(name: str, *args: object) -> str:
    # Under PUBLIC_BASE_URL, never the request's Host header, which a visitor chooses.
    return public_base_url() + reverse(name, args=args)


def file_urls(link: ShareLink, run: Run) -> dict[str, str]:
    """Site-relative URLs of a shared run's video and poster under this link."""
    if link.batch_id is not None:
        return {
            "video": reverse("shared_batch_result", args=[link.token, link.variant_key(run)]),
            "poster": reverse("shared_batch_poster", args=[link.token, link.variant_key(run)]),
        }
    return {
        "video": reverse("shared_result", args=[link.token]),
        "poster": reverse("shared_poster", args=[link.token]),
    }


def unfurl(link: ShareLink, runs: list[Run]) -> dict[str, Any]:
    """The Open Graph and Twitter card facts: what a chat app shows for a pasted link."""
    run = runs[0]
    files = file_urls(link, run)
    width, height = run.result_width or 0, run.result_height or 0
    poster_width, poster_height = (
        video.fit_within(width, height, POSTER_MAX_SIDE) if width and height else (0, 0)
    )
    if len(runs) > 1:
        description = f"{len(runs)} variants made with Kling O1 Reference V2V."
    else:
        description = f"A {run.duration} s video made with Kling O1 Reference V2V."
    base = public_base_url()
    return {
        "title": run.prompt,
        "title_chars": OG_TITLE_CHARS,
        "description": description,
        "url": _absolute("shared", link.token),
        "video": base + files["video"],
        "image": base + files["poster"] if run.poster else "",
        "embed": _absolute("shared_embed", link.token),
        "width": width,
        "height": height,
        "image_width": poster_width,
        "image_height": poster_height,
    }


def _public(response: HttpResponse) -> HttpResponse:
    # Search engines stay out (the link is for the people it was sent to), whatever the
    # page's markup says; chat apps' unfurlers don't read this.
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


# Link-preview fetchers (chat apps, social sites) that read a page to unfurl it: their
# fetches are not people viewing it. Matched in the lower-cased User-Agent: the named
# ones, and any agent giving a bot's version ("Discordbot/2.0", "Googlebot/2.1"), which a
# phone whose model name ends in "bot" (a Cubot) does not.
UNFURLERS = re.compile(
    r"bot/|slackbot|telegrambot|facebookexternalhit|whatsapp|embedly|iframely|mastodon"
    r"|skypeuripreview|vkshare|crawler|spider"
)


def _is_unfurler(request: HtmxRequest) -> bool:
    return bool(UNFURLERS.search(request.headers.get("User-Agent", "").lower()))


# HEAD too (require_safe): some unfurlers ask with HEAD before they fetch the page.
@login_not_required
@require_safe
@cache_control(private=True, no_cache=True)  # a revoked link must not live on in a cache
def shared_run(request: HtmxRequest, token: str) -> HttpResponse:
    link = _live_link(token)
    runs = _shared_runs(link)
    # A view is a person opening the page: not its owner checking it, not an unfurler.
    if request.method == "GET" and request.user.pk != link.user_id and not _is_unfurler(request):
        link.register_view()
    variants = [(run, file_urls(link, run)) for run in runs]
    context = {"link": link, "variants": variants, "og": unfurl(link, runs)}
    return _public(render(request, "runs/shared.html", context))


@login_not_required
@require_safe
@xframe_options_exempt  # the player card's page: chat apps and Twitter frame it
@cache_control(private=True, no_cache=True)
def shared_embed(request: HtmxRequest, token: str) -> HttpResponse:
    link = _live_link(token)
    run = _shared_runs(link)[0]
    context = {"run": run, "files": file_urls(link, run)}
    return _public(render(request, "runs/shared_embed.html", context))


@login_not_required
@require_safe
def shared_result(request: HtmxRequest, token: str, variant: str | None = None) -> HttpResponseBase:
    run = _file_run(token, variant)
    return _shared_file(serve(request, run.result.name, content_type="video/mp4"))


@login_not_required
@require_safe
def shared_poster(request: HtmxRequest, token: str, variant: str | None = None) -> HttpResponseBase:
    run = _file_run(token, variant)
    return _shared_file(serve(request, run.poster.name, content_type="image/jpeg"))


def _shared_file(response: HttpResponseBase) -> HttpResponseBase:
    """A shared file is revalidated on every use (an ETag or Last-Modified makes that a
    cheap 304), so a revoked or expired link stops playing at once, not an hour later."""
    response["Cache-Control"] = "private, no-cache"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response

"""The share panel (runs/share_links.html), for a run's page or a batch's: its links, its
form, and the address to copy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django import template
from django.conf import settings
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.dateformat import format as date_format

from playground.runs.models import DEFAULT_SHARE_EXPIRY, SHARE_EXPIRIES, Batch, Run, ShareLink
from playground.runs.references import public_address_is_local, public_base_url

register = template.Library()


@dataclass
class SharePanel:
    links: list[ShareLink]
    create_url: str
    can_share: bool
    what: str  # "this run", "every finished variant of this batch"
    # (key, label, "until …" as the sentence under the form ends) per choice, in order.
    expiries: list[tuple[str, str, str]]
    default_expiry: str

    @property
    def unfurls(self) -> bool:
        """Whether a chat app can fetch the page's preview tags: they name files under
        PUBLIC_BASE_URL, never the Host a request came with (which anyone can forge)."""
        return not public_address_is_local()

    @property
    def public_base_url(self) -> str:
        return public_base_url()

    @property
    def default_until(self) -> str:
        return next(until for key, _, until in self.expiries if key == self.default_expiry)


def _expiries() -> list[tuple[str, str, str]]:
    now = timezone.now()
    return [
        (
            key,
            label,
            f"until {date_format(now + life, 'M j, Y')}" if life else "until you revoke it",
        )
        for key, (label, life) in SHARE_EXPIRIES.items()
    ]


@register.simple_tag
def share_panel(run: Run | None = None, batch: Batch | None = None) -> SharePanel:
    # An {% include %} given only one of the two passes the other as "", hence truthiness.
    expiries = _expiries()
    if run:
        return SharePanel(
            links=list(run.share_links.live()),
            create_url=reverse("run_share", args=[run.code]),
            can_share=run.has_result,
            what="this run",
            expiries=expiries,
            default_expiry=DEFAULT_SHARE_EXPIRY,
        )
    if not batch:
        raise template.TemplateSyntaxError("share_panel needs a run or a batch")
    return SharePanel(
        links=list(batch.share_links.live()),
        create_url=reverse("batch_share", args=[batch.code]),
        can_share=batch.shareable_runs().exists(),
        what="every finished variant of this batch",
        expiries=expiries,
        default_expiry=DEFAULT_SHARE_EXPIRY,
    )


@register.simple_tag(takes_context=True)
def share_url(context: dict[str, Any], link: ShareLink) -> str:
    """The address to send: under PUBLIC_BASE_URL when set (what chat apps will fetch),
    else the one the owner is using this instance at."""
    path = reverse("shared", args=[link.token])
    request: HttpRequest | None = context.get("request")
    if settings.PUBLIC_BASE_URL or request is None:
        return public_base_url() + path
    return request.build_absolute_uri(path)

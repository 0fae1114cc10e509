"""Share links: expiry, revoking, views, batches, the owner's list, and the tags that let a
pasted link unfurl into a playable preview in chat apps."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from playground.runs.models import Batch, Run, ShareLink
from tests.builders import make_run, served_bytes, serves_file

pytestmark = pytest.mark.django_db

BEFORE_SHARE_LINKS = [("runs", "0007_experimentation")]


class MetaTags(HTMLParser):
    """The page's <meta> tags, by their property or name."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.tags: dict[str, str] = {}
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        key = values.get("property") or values.get("name")
        if tag == "meta" and key:
            self.tags[key] = values.get("content") or ""


def make_batch(user, clip, *statuses: str) -> tuple[Batch, list[Run]]:
    batch = Batch.objects.create(user=user, idempotency_key=uuid.uuid4())
    runs = [
        make_run(user, clip, status=status, batch=batch, prompt=f"@Video1 variant {n}")
        for n, status in enumerate(statuses, 1)
    ]
    return batch, runs


def public_urls(token: str) -> list[str]:
    return [reverse(name, args=[token]) for name in ("shared", "shared_embed", "shared_result")]


# --- Making links ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("choice", "life"),
    [
        ("never", None),
        ("1d", timedelta(days=1)),
        ("7d", timedelta(days=7)),
        ("30d", timedelta(days=30)),
    ],
)
def test_it_creates_a_link_with_each_expiry(owner_client, owner, clip, choice, life):
    run = make_run(owner, clip)

    response = owner_client.post(reverse("run_share", args=[run.code]), {"expires": choice})

    link = run.share_links.get()
    assert response.status_code == 302
    if life is None:
        assert link.expires_at is None
    else:
        assert abs(link.expires_at - (timezone.now() + life)) < timedelta(minutes=1)
    assert link.is_live and Client().get(reverse("shared", args=[link.token])).status_code == 200


def test_it_offers_the_four_expiries_with_seven_days_chosen(owner_client, owner, clip):
    run = make_run(owner, clip)

    page = owner_client.get(run.get_absolute_url()).content.decode()

    options = re.findall(r'<option value="(\w+)" data-until="[^"]+"( selected)?>([^<]+)<', page)
    assert [(key, label) for key, _, label in options] == [
        ("never", "Never"),
        ("1d", "1 day"),
        ("7d", "7 days"),
        ("30d", "30 days"),
    ]
    assert [key for key, selected, _ in options if selected] == ["7d"]
    in_a_week = timezone.now() + timedelta(days=7)
    assert (
        "Anyone with the link can watch this run <span data-share-until>"
        f"until {in_a_week:%b} {in_a_week.day}, {in_a_week.year}</span>"
    ) in page


def test_it_refuses_an_expiry_the_form_does_not_offer(owner_client, owner, clip):
    run = make_run(owner, clip)

    response = owner_client.post(reverse("run_share", args=[run.code]), {"expires": "365d"})

    assert response.status_code == 400 and not ShareLink.objects.exists()


def test_it_answers_an_htmx_share_with_the_panel_holding_the_new_link(owner_client, owner, clip):
    run = make_run(owner, clip)

    response = owner_client.post(
        reverse("run_share", args=[run.code]), {"expires": "1d"}, headers={"HX-Request": "true"}
    )

    link = run.share_links.get()
    content = response.content.decode()
    assert response.status_code == 200 and content.lstrip().startswith('<div id="share-links"')
    assert f'value="http://testserver{reverse("shared", args=[link.token])}"' in content
    assert reverse("share_revoke", args=[link.pk]) in content


# --- Expired, revoked, deleted ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("public", "warned"),
    [("", True), ("http://192.168.1.20:8000", True), ("https://clips.example.com", False)],
)
def test_the_share_panel_says_when_a_link_cannot_unfurl(
    owner_client, owner, clip, settings, public, warned
):
    settings.PUBLIC_BASE_URL = public
    run = make_run(owner, clip)
    page = owner_client.get(run.get_absolute_url()).content.decode()
    assert "Create share link" in page
    assert ("won’t unfurl into a preview" in page) is warned


def test_it_answers_404_for_an_expired_share_token(client, owner, clip):
    link = ShareLink.create(owner, run=make_run(owner, clip), expires_in=timedelta(days=1))
    assert client.get(reverse("shared", args=[link.token])).status_code == 200
    ShareLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    for url in [*public_urls(link.token), reverse("shared_poster", args=[link.token])]:
        assert client.get(url).status_code == 404, url


def test_it_answers_404_for_the_files_of_an_expired_batch_link(client, owner, clip):
    batch, [run] = make_batch(owner, clip, "completed")
    link = ShareLink.create(owner, batch=batch)
    url = reverse("shared_batch_result", args=[link.token, link.variant_key(run)])
    assert serves_file(client.get(url))
    ShareLink.objects.filter(pk=link.pk).update(expires_at=timezone.now() - timedelta(seconds=1))

    assert client.get(url).status_code == 404
    assert client.get(reverse("shared", args=[link.token])).status_code == 404


def test_it_closes_the_links_of_a_deleted_run(owner_client, client, owner, clip):
    run = make_run(owner, clip)
    link = ShareLink.create(owner, run=run)

    owner_client.post(reverse("run_delete", args=[run.code]))

    link.refresh_from_db()
    assert link.revoked_at is not None
    assert client.get(reverse("shared", args=[link.token])).status_code == 404


def test_a_revoked_link_closes_its_page_and_files(owner_client, client, owner, clip):
    link = ShareLink.create(owner, run=make_run(owner, clip))
    urls = [*public_urls(link.token), reverse("shared_poster", args=[link.token])]
    # Open: the page, or the file (from a bucket, by a redirect to a presigned URL).
    assert all(client.get(url).status_code in (200, 302) for url in urls)
    owner_client.post(reverse("share_revoke", args=[link.pk]))
    assert [client.get(url).status_code for url in urls] == [404] * len(urls)


def test_a_batch_link_closes_when_its_last_shown_run_is_deleted(owner_client, client, owner, clip):
    batch, (first, second) = make_batch(owner, clip, "completed", "completed")
    link = ShareLink.create(owner, batch=batch)
    # With a variant still to come, a batch whose shown runs are all gone stays shared.
    still_running, (done, _live) = make_batch(owner, clip, "completed", "processing")
    waiting = ShareLink.create(owner, batch=still_running)
    owner_client.post(reverse("run_delete", args=[done.code]))
    assert ShareLink.objects.get(pk=waiting.pk).revoked_at is None
    owner_client.post(reverse("run_delete", args=[first.code]))
    assert client.get(reverse("shared", args=[link.token])).status_code == 200  # one left
    assert ShareLink.objects.get(pk=link.pk).revoked_at is None
    owner_client.post(reverse("run_delete", args=[second.code]))
    assert ShareLink.objects.get(pk=link.pk).revoked_at is not None
    assert link.token not in owner_client.get(reverse("share_links")).text  # not "live"


def test_it_revokes_a_link_only_for_its_owner(owner_client, stranger_client, client, owner, clip):
    link = ShareLink.create(owner, run=make_run(owner, clip))
    url = reverse("share_revoke", args=[link.pk])

    assert stranger_client.post(url).status_code == 404
    assert client.get(reverse("shared", args=[link.token])).status_code == 200  # still open

    response = owner_client.post(url, {"next": reverse("share_links")})

    assert response.status_code == 302 and response["Location"] == reverse("share_links")
    assert client.get(reverse("shared", args=[link.token])).status_code == 404
    first = ShareLink.objects.get(pk=link.pk).revoked_at
    owner_client.post(url, {"next": "https://elsewhere.example/"})  # not an open redirect
    assert ShareLink.objects.get(pk=link.pk).revoked_at == first  # the first revoke stays


# --- Views ----------------------------------------------------------------------------------


def test_it_counts_a_view_per_page_not_per_file(owner_client, client, owner, clip):
    link = ShareLink.create(owner, run=make_run(owner, clip))
    page = reverse("shared", args=[link.token])
    result = reverse("shared_result", args=[link.token])

    client.get(page)
    for bytes_range in ("bytes=0-99", "bytes=100-", None):  # a player seeking
        client.get(result, headers={"Range": bytes_range} if bytes_range else {})
    client.get(reverse("shared_poster", args=[link.token]))
    client.get(reverse("shared_embed", args=[link.token]))
    Client().get(page)  # a second visitor
    owner_client.get(page)  # the owner checking their own link
    # A chat app unfurling the link (some ask with HEAD first) is not a person viewing it.
    assert client.head(page, headers={"User-Agent": "Mozilla/5.0"}).status_code == 200
    for agent in ("Slackbot-LinkExpanding 1.0", "facebookexternalhit/1.1", "WhatsApp/2.23"):
        assert client.get(page, headers={"User-Agent": agent}).status_code == 200

    assert ShareLink.objects.get(pk=link.pk).views == 2


@pytest.mark.parametrize(
    ("agent", "unfurler"),
    [
        ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", True),
        ("Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)", True),
        ("TelegramBot (like TwitterBot)", True),
        ("http.rb/5.1.1 (Mastodon/4.2.0; +https://mastodon.social/)", True),
        ("WhatsApp/2.23.20.0 A", True),
        ("Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 Mobile", False),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Safari/604.1", False),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156 Safari", False),
    ],
)
def test_it_tells_unfurlers_from_people(client, owner, clip, agent, unfurler):
    link = ShareLink.create(owner, run=make_run(owner, clip))
    client.get(reverse("shared", args=[link.token]), headers={"User-Agent": agent})
    assert ShareLink.objects.get(pk=link.pk).views == (0 if unfurler else 1)


# --- Unfurling ------------------------------------------------------------------------------


def test_it_unfurls_with_absolute_https_urls_under_the_public_address(
    client, owner, clip, settings
):
    settings.PUBLIC_BASE_URL = "http://play.example.com"
    settings.HTTPS = True  # behind TLS: the public http:// address is taken as https://
    run = make_run(owner, clip, prompt="@Video1 " + "a lighthouse in a storm, " * 5)
    link = ShareLink.create(owner, run=run)
    base = "https://play.example.com"

    response = client.get(
        reverse("shared", args=[link.token]), headers={"Host": "testserver"}, secure=True
    )

    tags = MetaTags(response.content.decode()).tags
    assert response.status_code == 200
    assert tags["og:type"] == "video.other"
    assert tags["og:title"].startswith("@Video1 a lighthouse") and len(tags["og:title"]) <= 70
    assert tags["og:url"] == base + reverse("shared", args=[link.token])
    assert (
        tags["og:video"]
        == tags["og:video:secure_url"]
        == base + reverse("shared_result", args=[link.token])
    )
    assert tags["og:video:type"] == "video/mp4"
    assert (tags["og:video:width"], tags["og:video:height"]) == ("320", "240")
    assert tags["og:image"] == base + reverse("shared_poster", args=[link.token])
    assert (tags["og:image:width"], tags["og:image:height"]) == ("320", "240")  # the poster's
    assert tags["twitter:card"] == "player"
    assert tags["twitter:player"] == base + reverse("shared_embed", args=[link.token])
    assert (tags["twitter:player:width"], tags["twitter:player:height"]) == ("320", "240")
    assert tags["twitter:image"] == tags["og:image"]
    assert tags["robots"].startswith("noindex") and response["X-Robots-Tag"].startswith("noindex")
    assert "testserver" not in "".join(tags.values())  # never the Host a visitor sent
    # Only the player page may be framed (by the chat apps that show it).
    assert response["X-Frame-Options"] == "DENY"
    embed = client.get(reverse("shared_embed", args=[link.token]), secure=True)
    assert embed.status_code == 200 and "X-Frame-Options" not in embed
    assert f'src="{reverse("shared_result", args=[link.token])}"' in embed.content.decode()


def test_it_keeps_private_facts_off_the_shared_page(client, owner, clip):
    run = make_run(owner, clip, note="client hates blue", billed_cost_micros=504_000)
    link = ShareLink.create(owner, run=run)

    content = client.get(reverse("shared", args=[link.token])).content.decode()

    assert run.prompt in content and "Made with Kling O1 Reference V2V" in content
    for private in ("client hates blue", "$0.504", "owner", str(run.code)):
        assert private not in content, private


# --- Batches --------------------------------------------------------------------------------


def test_it_shares_a_batch_with_every_completed_variant(owner_client, client, owner, clip):
    batch, [first, failed, second] = make_batch(owner, clip, "completed", "failed", "completed")
    elsewhere = make_run(owner, clip)

    response = owner_client.post(reverse("batch_share", args=[batch.code]), {"expires": "30d"})

    link = batch.share_links.get()
    assert response.status_code == 302 and response["Location"] == batch.get_absolute_url()
    page = client.get(reverse("shared", args=[link.token])).content.decode()
    assert first.prompt in page and second.prompt in page and failed.prompt not in page
    assert page.index(first.prompt) < page.index(second.prompt)  # in the order made
    for run in (first, second):
        result = client.get(
            reverse("shared_batch_result", args=[link.token, link.variant_key(run)])
        )
        assert serves_file(result)
        assert served_bytes(result) == clip[0].read_bytes()
        poster = client.get(
            reverse("shared_batch_poster", args=[link.token, link.variant_key(run)])
        )
        assert serves_file(poster)
    # Only the batch's finished runs, and only by the batch's files' addresses.
    for run in (failed, elsewhere):
        url = reverse("shared_batch_result", args=[link.token, link.variant_key(run)])
        assert client.get(url).status_code == 404, run.status
    assert client.get(reverse("shared_result", args=[link.token])).status_code == 404
    # And a run link opens no batch files.
    run_link = ShareLink.create(owner, run=first)
    url = reverse("shared_batch_result", args=[run_link.token, run_link.variant_key(first)])
    assert client.get(url).status_code == 404


def test_it_shares_a_batch_only_for_its_owner_once_a_variant_finished(
    owner_client, stranger_client, owner, clip
):
    unfinished, _ = make_batch(owner, clip, "processing", "failed")
    done, _ = make_batch(owner, clip, "completed")

    assert (
        owner_client.post(
            reverse("batch_share", args=[unfinished.code]), {"expires": "7d"}
        ).status_code
        == 404
    )
    assert (
        stranger_client.post(
            reverse("batch_share", args=[done.code]), {"expires": "7d"}
        ).status_code
        == 404
    )
    assert not ShareLink.objects.exists()


# --- The owner's list -----------------------------------------------------------------------


def test_it_lists_the_owners_live_links_and_on_request_the_dead(
    owner_client, stranger_client, owner, stranger, clip
):
    live = ShareLink.create(owner, run=make_run(owner, clip, prompt="@Video1 live one"))
    expired = ShareLink.create(owner, run=make_run(owner, clip, prompt="@Video1 expired one"))
    ShareLink.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - timedelta(days=1))
    batch, _ = make_batch(owner, clip, "completed")
    batch_link = ShareLink.create(owner, batch=batch, expires_in=timedelta(days=7))
    theirs = ShareLink.create(stranger, run=make_run(stranger, clip, prompt="@Video1 theirs"))

    page = owner_client.get(reverse("share_links")).content.decode()

    assert "@Video1 live one" in page and live.token in page
    # Each row: a thumbnail at its display size, created, expiry, views, and Revoke.
    live_run = live.run
    assert live_run is not None
    thumb = reverse("run_thumb", args=[live_run.code])
    assert f'src="{thumb}" alt="" width="96" height="54" loading="lazy"' in page
    assert "/poster.jpg" not in page
    assert timezone.localtime(live.created_at).strftime("%Y-%m-%d %H:%M") in page
    assert "never" in page
    assert reverse("share_revoke", args=[live.pk]) in page
    assert re.search(r"<td>\s*0\s*</td>", page)  # no views yet
    assert batch_link.token in page and "Batch of 1" in page
    assert "@Video1 expired one" not in page
    assert "@Video1 theirs" not in page and theirs.token not in page
    everything = owner_client.get(reverse("share_links") + "?all=1").content.decode()
    assert "@Video1 expired one" in everything and "expired " in everything
    assert expired.token not in everything  # a dead link is not offered for copying
    assert "@Video1 theirs" not in everything
    assert live.token not in stranger_client.get(reverse("share_links")).content.decode()


# --- Links made before share links existed ---------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_keeps_a_legacy_share_token_working_after_the_migration(client, owner, clip):
    run = make_run(owner, clip)
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE_SHARE_LINKS)
    with connection.cursor() as cursor:  # shared the old way: a token on the run
        cursor.execute("UPDATE runs_run SET share_token = %s WHERE id = %s", ["tok-legacy", run.pk])

    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())

    link = ShareLink.objects.get(token="tok-legacy")
    assert (link.run_id, link.user_id, link.expires_at) == (run.pk, owner.pk, None)
    assert client.get(reverse("shared", args=["tok-legacy"])).status_code == 200


def test_it_never_lets_a_shared_file_outlive_its_link_in_a_cache(client, owner, clip):
    run = make_run(owner, clip)
    link = ShareLink.create(owner, run=run, expires_in=None)
    for name in ("shared_result", "shared_poster"):
        response = client.get(reverse(name, args=[link.token]))
        # With a bucket, the redirect is not kept (its presigned URL still lives
        # MEDIA_URL_MAX_AGE_SECONDS for a browser that already followed it).
        assert serves_file(response)
        assert response["Cache-Control"] == "private, no-cache"
        assert "noindex" in response["X-Robots-Tag"]

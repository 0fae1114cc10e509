"""Who may see what: sign-in, other users' runs, share links and signed reference URLs."""

from __future__ import annotations

import html
import json
import re
import time
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core import signing
from django.urls import reverse
from django.utils import timezone

from playground.runs.models import Reference, Run, ShareLink
from playground.runs.references import SIGNING_SALT, signed_reference_url
from tests.builders import (
    is_stored,
    make_reference,
    make_run,
    served_bytes,
    serves_file,
    signup_data,
)

pytestmark = pytest.mark.django_db


def live_links(run: Run) -> list[str]:
    return list(run.share_links.live().values_list("token", flat=True))


def body(response) -> bytes:
    if response.status_code == 302 or response.streaming:
        return served_bytes(response)
    return response.content


# --- Signing in ---------------------------------------------------------------------------

LOGIN_REQUIRED = [
    # (url name, needs a run / reference code, method)
    ("generate", None, "get"),
    ("generate", None, "post"),
    ("history", None, "get"),
    ("run", "run", "get"),
    ("run_status", "run", "get"),
    ("run_cancel", "run", "post"),
    ("run_share", "run", "post"),
    ("share_revoke", "link", "post"),
    ("share_links", None, "get"),
    ("run_delete", "run", "post"),
    ("run_result", "run", "get"),
    ("run_poster", "run", "get"),
    ("reference_video", "reference", "get"),
    ("reference_poster", "reference", "get"),
]


@pytest.mark.parametrize(
    ("name", "needs", "method"), LOGIN_REQUIRED, ids=[f"{m}-{n}" for n, _, m in LOGIN_REQUIRED]
)
def test_it_sends_anonymous_users_to_log_in(client, owner, clip, name, needs, method):
    # Each action finds a run it would change: cancel a live one, share an unshared one.
    if name == "run_cancel":
        run = make_run(owner, clip, status="queued", provider_job_id="job_live")
    else:
        run = make_run(owner, clip)
    link = ShareLink.create(owner, run=run) if name == "share_revoke" else None
    before = (run.status, run.cancel_requested, live_links(run))
    args = {
        "run": [run.code],
        "reference": [run.reference.code],
        "link": [link.pk if link else 0],
        None: [],
    }[needs]
    url = reverse(name, args=args)

    response = getattr(client, method)(url)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"
    after = Run.objects.get(pk=run.pk)  # nothing happened to the run
    assert (after.status, after.cancel_requested, live_links(after)) == before
    assert Run.objects.count() == 1


def test_it_lets_anonymous_users_log_in_sign_up_and_watch_a_shared_run(client, owner, clip):
    run = make_run(owner, clip)
    token = ShareLink.create(owner, run=run).token

    for url in (reverse("login"), reverse("signup"), reverse("shared", args=[token])):
        response = client.get(url)
        assert response.status_code == 200, url
    assert client.post(reverse("login"), {"username": "owner", "password": "pw-owner-123"})[
        "Location"
    ] == reverse("generate")


def test_it_signs_up_a_new_user_by_default(client):
    response = client.post(reverse("signup"), signup_data("newcomer"))

    assert response.status_code == 302 and response["Location"] == reverse("generate")
    assert User.objects.filter(username="newcomer").exists()
    assert client.get(reverse("generate")).status_code == 200  # signed in already


def test_it_closes_sign_up_when_disabled(client, settings):
    settings.SIGNUP_ENABLED = False

    assert client.get(reverse("signup")).status_code == 404
    response = client.post(reverse("signup"), signup_data("intruder"))
    assert response.status_code == 404
    assert not User.objects.filter(username="intruder").exists()
    login_page = client.get(reverse("login")).content.decode()
    assert reverse("signup") not in login_page
    assert "Sign-up is closed" in login_page


def test_it_removes_a_user_with_their_runs_references_and_files(owner, stranger, clip):
    reference = make_reference(owner, clip)
    run = make_run(owner, clip, reference=reference)
    make_run(owner, clip, status="failed", reference=reference)
    theirs = make_run(stranger, clip)
    files = [run.result.name, run.poster.name, reference.file.name]
    assert all(is_stored(name) for name in files)

    owner.delete()  # what the admin's "delete user" does

    assert not Run.objects.filter(user_id=owner.pk).exists()
    assert not Reference.objects.filter(user_id=owner.pk).exists()
    assert not any(is_stored(name) for name in files)
    assert Run.objects.filter(pk=theirs.pk).exists() and is_stored(theirs.result.name)


# --- Other users' runs do not exist for you -----------------------------------------------

STRANGER_404 = [
    ("run", "get", {}),
    ("run_status", "get", {"HX-Request": "true"}),
    ("run_status", "get", {}),
    ("run_result", "get", {}),
    ("run_poster", "get", {}),
    ("run_cancel", "post", {}),
    ("run_share", "post", {}),
    ("run_delete", "post", {}),
]


@pytest.mark.parametrize(
    ("name", "method", "headers"),
    STRANGER_404,
    ids=[f"{m}-{n}-{'htmx' if h else 'plain'}" for n, m, h in STRANGER_404],
)
def test_it_answers_404_to_a_stranger_for_the_owners_run(
    stranger_client, owner, clip, name, method, headers
):
    done = make_run(owner, clip)
    token = ShareLink.create(owner, run=done).token
    live = make_run(owner, clip, status="queued", provider_job_id="job_live")

    for run in (done, live):
        url = reverse(name, args=[run.code])
        response = getattr(stranger_client, method)(url, headers=headers)
        assert response.status_code == 404, (run.status, response.status_code)

    done_after, live_after = Run.objects.get(pk=done.pk), Run.objects.get(pk=live.pk)
    assert live_links(done_after) == [token]  # not revoked, none added
    assert live_after.status == "queued" and not live_after.cancel_requested
    assert is_stored(done.result.name) and is_stored(done.poster.name)


@pytest.mark.parametrize("name", ["reference_video", "reference_poster"])
def test_it_answers_404_to_a_stranger_for_the_owners_reference(
    owner_client, stranger_client, owner, clip, name
):
    reference = make_reference(owner, clip)
    url = reverse(name, args=[reference.code])

    assert serves_file(owner_client.get(url))
    assert stranger_client.get(url).status_code == 404


def test_it_lists_only_the_users_own_runs_in_history(
    owner_client, stranger_client, owner, stranger, clip
):
    mine = [
        make_run(owner, clip, billed_cost_micros=504_000),
        make_run(owner, clip, duration=5, billed_cost_micros=840_000),
        make_run(owner, clip, status="failed"),
    ]
    theirs = make_run(stranger, clip, billed_cost_micros=1_680_000)

    content = owner_client.get(reverse("history")).content.decode()

    for run in mine:
        assert run.prompt in content
        assert run.get_absolute_url() in content
    assert theirs.prompt not in content
    assert str(theirs.code) not in content
    assert re.search(r'<strong id="simulated-total">\$1\.344</strong>', content)
    assert 'id="total-billed"' not in content  # nothing real was billed

    content = stranger_client.get(reverse("history")).content.decode()
    assert theirs.prompt in content
    assert all(run.prompt not in content for run in mine)
    assert re.search(r'<strong id="simulated-total">\$1\.680</strong>', content)


# --- Share links (more in test_sharing.py) ------------------------------------------------


def test_it_shares_a_completed_run_with_anyone_holding_the_link(owner_client, client, owner, clip):
    run = make_run(owner, clip, prompt="@Video1 drifting through fog at dawn")
    other = make_run(owner, clip, prompt="@Video1 a private experiment")

    response = owner_client.post(reverse("run_share", args=[run.code]), {"expires": "7d"})

    token = run.share_links.get().token
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    assert token and len(token) >= 20
    assert token != str(run.code) and run.code.hex not in token and str(run.code) not in token
    page = owner_client.get(run.get_absolute_url()).content.decode()
    assert reverse("shared", args=[token]) in page

    shared = client.get(reverse("shared", args=[token]))  # anyone: not signed in
    content = shared.content.decode()
    assert shared.status_code == 200
    assert "@Video1 drifting through fog at dawn" in content
    assert "<video" in content and reverse("shared_result", args=[token]) in content
    assert "owner" not in content  # neither the username nor anything of theirs
    assert other.prompt not in content
    assert f'href="{reverse("history")}"' not in content
    assert str(run.code) not in content
    assert run.reference.name not in content

    result = client.get(reverse("shared_result", args=[token]))
    assert serves_file(result)
    assert body(result) == clip[0].read_bytes()
    poster = client.get(reverse("shared_poster", args=[token]))
    assert serves_file(poster) and body(poster) == clip[1].read_bytes()


def test_it_makes_a_new_link_each_time_a_run_is_shared(owner_client, owner, clip):
    run = make_run(owner, clip)

    owner_client.post(reverse("run_share", args=[run.code]), {"expires": "7d"})
    owner_client.post(reverse("run_share", args=[run.code]), {"expires": "never"})

    tokens = live_links(run)
    assert len(tokens) == 2 and len(set(tokens)) == 2  # one per recipient, each revocable


def test_it_forgets_a_revoked_share_link(owner_client, client, owner, clip):
    run = make_run(owner, clip)
    owner_client.post(reverse("run_share", args=[run.code]), {"expires": "7d"})
    link = run.share_links.get()
    old = link.token
    assert client.get(reverse("shared", args=[old])).status_code == 200  # live until revoked

    response = owner_client.post(reverse("share_revoke", args=[link.pk]))

    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    assert live_links(run) == []
    for name in ("shared", "shared_result", "shared_poster"):
        assert client.get(reverse(name, args=[old])).status_code == 404, name

    # Sharing again makes a new link; the old one stays dead.
    owner_client.post(reverse("run_share", args=[run.code]), {"expires": "7d"})
    [new] = live_links(run)
    assert new != old
    assert client.get(reverse("shared", args=[new])).status_code == 200
    assert client.get(reverse("shared", args=[old])).status_code == 404


@pytest.mark.parametrize("token", ["no-such-token", "a" * 24])
def test_it_answers_404_for_an_unknown_share_token(client, owner, clip, token):
    ShareLink.create(owner, run=make_run(owner, clip))

    for name in ("shared", "shared_result", "shared_poster"):
        assert client.get(reverse(name, args=[token])).status_code == 404, name


@pytest.mark.parametrize("status", ["pending", "queued", "processing", "failed", "cancelled"])
def test_it_does_not_share_a_run_that_is_not_completed(owner_client, owner, clip, status):
    run = make_run(owner, clip, status=status)

    response = owner_client.post(reverse("run_share", args=[run.code]), {"expires": "7d"})

    assert response.status_code == 404
    assert not ShareLink.objects.exists()


def test_it_hides_a_shared_link_to_a_run_that_is_no_longer_completed(client, owner, clip):
    run = make_run(owner, clip, status="failed")
    ShareLink.objects.create(token="tok-of-a-failed-run", user=owner, run=run)

    assert client.get(reverse("shared", args=["tok-of-a-failed-run"])).status_code == 404
    # Hidden, not revoked: the link is still live on the run.
    assert live_links(run) == ["tok-of-a-failed-run"]


# --- The signed reference URL the provider downloads from ---------------------------------


def _path_of(url: str) -> str:
    return urlsplit(url).path


def test_it_serves_the_reference_at_its_signed_url_without_login(client, owner, clip, local_files):
    """On local files; with a bucket the URL is a presigned one (tests/test_storage.py)."""
    reference = make_reference(owner, clip)

    url = signed_reference_url(reference)
    response = client.get(_path_of(url))

    assert url.startswith(f"http://127.0.0.1:{django_settings.PORT}/r/")
    assert str(reference.code) not in url
    assert response.status_code == 200
    assert response["Content-Type"] == "video/mp4"
    assert body(response) == clip[0].read_bytes()


def test_it_refuses_a_tampered_signed_reference_url(client, owner, clip, local_files):
    reference = make_reference(owner, clip)
    path = _path_of(signed_reference_url(reference))
    token = path.rsplit("/", 1)[1]

    tampered = token[:-1] + ("A" if token[-1] != "A" else "B")
    other_salt = signing.dumps(str(reference.code), salt="something-else", compress=True)
    unsigned = str(reference.code)

    for bad in (tampered, other_salt, unsigned):
        assert client.get(reverse("reference_download", args=[bad])).status_code == 404, bad
    assert client.get(path).status_code == 200  # the real one still works


def test_it_refuses_an_expired_signed_reference_url(client, owner, clip, settings, local_files):
    reference = make_reference(owner, clip)
    path = _path_of(signed_reference_url(reference))
    assert client.get(path).status_code == 200

    settings.REFERENCE_URL_MAX_AGE_SECONDS = -1

    assert client.get(path).status_code == 404


class _SignerInThePast(signing.TimestampSigner):
    def timestamp(self) -> str:
        return signing.b62_encode(int(time.time()) - 7 * 3600)


def test_it_refuses_a_signed_reference_url_older_than_its_lifetime(
    client, owner, clip, local_files
):
    reference = make_reference(owner, clip)
    old = _SignerInThePast(salt=SIGNING_SALT).sign_object(str(reference.code), compress=True)
    fresh = signing.TimestampSigner(salt=SIGNING_SALT).sign_object(
        str(reference.code), compress=True
    )

    assert django_settings.REFERENCE_URL_MAX_AGE_SECONDS < 7 * 3600
    assert client.get(reverse("reference_download", args=[fresh])).status_code == 200
    assert client.get(reverse("reference_download", args=[old])).status_code == 404


# --- The status poll ----------------------------------------------------------------------


def poll_url(page: str) -> str:
    """The URL the run page's status card polls (hx-get), as the browser would use it."""
    match = re.search(r'<div id="status-card"[^>]*?hx-get="([^"]+)"', page, re.S)
    assert match, "the card does not poll"
    return html.unescape(match.group(1))


def poll_headers(page: str) -> dict[str, str]:
    """The headers htmx sends with the card's poll: HX-Request and the page's status key."""
    match = re.search(r"hx-headers='(\{\"X-Status-Key\": \"[^\"]+\"\})'", page)
    assert match, "the page carries no status key"
    return {"HX-Request": "true", **json.loads(html.unescape(match.group(1)))}


POLL_TRIGGER = (
    "every 2s [document.visibilityState === 'visible'], "
    "visibilitychange[document.visibilityState === 'visible'] from:document"
)


def test_it_polls_an_active_run_from_the_database_only(owner_client, client, owner, clip, settings):
    settings.AIGATEWAY_BASE_URL = "http://127.0.0.1:9"  # nothing listens: a call would fail
    run = make_run(owner, clip, status="queued", provider_job_id="job_abc")
    page = owner_client.get(run.get_absolute_url()).content.decode()
    url, headers = poll_url(page), poll_headers(page)
    assert url == reverse("run_status", args=[run.code])  # no key in the URL (access logs)

    response = client.get(url, headers=headers)  # the key alone opens the live card: no session

    content = response.content.decode()
    assert response.status_code == 200
    assert html.unescape(f'hx-trigger="{POLL_TRIGGER}"') in html.unescape(content)
    assert poll_url(content) == url  # it goes on polling the same way
    assert 'data-status="queued"' in content
    assert "<html" not in content  # the card alone, not the page
    after = Run.objects.get(pk=run.pk)
    assert (after.status, after.provider_requests, after.notice) == ("queued", 0, "")


def test_it_refuses_a_poll_for_someone_elses_run_even_with_a_key(
    owner_client, stranger_client, client, owner, clip
):
    first = make_run(owner, clip, status="queued", provider_job_id="job_1")
    second = make_run(owner, clip, status="queued", provider_job_id="job_2")
    headers = poll_headers(owner_client.get(first.get_absolute_url()).content.decode())
    forged = {"HX-Request": "true", "X-Status-Key": f"{first.code}:1:forged"}
    plain = {"HX-Request": "true"}
    first_url = reverse("run_status", args=[first.code])
    second_url = reverse("run_status", args=[second.code])
    assert client.get(first_url, headers=headers).status_code == 200  # the real key works

    assert stranger_client.get(first_url, headers=plain).status_code == 404
    assert stranger_client.get(first_url, headers=forged).status_code == 404
    assert stranger_client.get(second_url, headers=headers).status_code == 404  # key is per run
    for url, attempt in ((first_url, forged), (second_url, headers), (first_url, plain)):
        response = client.get(url, headers=attempt)
        assert response.status_code in (302, 404), attempt
        assert b"status-card" not in response.content


def test_it_stops_honouring_an_expired_status_key(owner_client, client, owner, clip, settings):
    run = make_run(owner, clip, status="processing", provider_job_id="job_old")
    headers = poll_headers(owner_client.get(run.get_absolute_url()).content.decode())
    url = reverse("run_status", args=[run.code])
    assert client.get(url, headers=headers).status_code == 200

    settings.STATUS_KEY_MAX_AGE_SECONDS = 0
    time.sleep(1.1)  # signatures carry whole seconds

    response = client.get(url, headers=headers)
    assert response.status_code == 302 and reverse("login") in response["Location"]
    assert b"status-card" not in response.content


def test_it_answers_a_finished_runs_full_card_only_to_its_owner(owner_client, client, owner, clip):
    run = make_run(owner, clip, status="processing", provider_job_id="job_done")
    headers = poll_headers(owner_client.get(run.get_absolute_url()).content.decode())
    finished = make_run(owner, clip)
    Run.objects.filter(pk=run.pk).update(
        status="completed",
        result=finished.result.name,
        poster=finished.poster.name,
        billed_cost_micros=504_000,
        finished_at=timezone.now(),
    )
    url = reverse("run_status", args=[run.code])

    anonymous = client.get(url, headers=headers)

    assert anonymous.status_code == 286  # polling stops
    content = anonymous.content.decode()
    assert "This run has finished" in content
    for secret in (run.prompt, "$0.504", reverse("run_result", args=[run.code]), "run-side"):
        assert secret not in content
    owners = owner_client.get(url, headers=headers).content.decode()
    assert reverse("run_result", args=[run.code]) in owners and "run-side" in owners


@pytest.mark.parametrize("key", ["ключ", "é" * 40, "x" * 5000])
def test_it_answers_a_hostile_status_key_without_an_error(client, owner, clip, key):
    run = make_run(owner, clip, status="queued", provider_job_id="job_k")
    url = reverse("run_status", args=[run.code])
    response = client.get(url, headers={"HX-Request": "true", "X-Status-Key": key})
    assert response.status_code in (302, 404)


def test_it_swaps_in_the_finished_card_when_a_polled_run_completes(owner_client, owner, clip):
    run = make_run(owner, clip, status="processing", provider_job_id="job_x")
    url = poll_url(owner_client.get(run.get_absolute_url()).content.decode())
    finished = make_run(owner, clip)  # a completed run's files, moved onto this run
    Run.objects.filter(pk=run.pk).update(
        status="completed",
        result=finished.result.name,
        poster=finished.poster.name,
        result_width=320,
        result_height=240,
        result_fps=24.0,
        billed_cost_micros=504_000,
        billed_seconds=3,
        finished_at=timezone.now(),
    )

    response = owner_client.get(url, headers={"HX-Request": "true"})

    content = response.content.decode()
    assert response.status_code == 286
    assert "hx-trigger" not in content
    assert 'data-status="completed"' in content
    assert f'src="{reverse("run_result", args=[run.code])}"' in content
    assert reverse("run_share", args=[run.code]) in content  # a finished run can be shared


def test_it_stops_polling_a_finished_run(owner_client, owner, clip, settings):
    settings.AIGATEWAY_BASE_URL = "http://127.0.0.1:9"
    run = make_run(owner, clip, provider_job_id="job_done")

    response = owner_client.get(
        reverse("run_status", args=[run.code]), headers={"HX-Request": "true"}
    )

    content = response.content.decode()
    assert response.status_code == 286
    assert "hx-trigger" not in content
    assert 'data-status="completed"' in content
    assert reverse("run_result", args=[run.code]) in content
    assert Run.objects.get(pk=run.pk).provider_requests == 0


@pytest.mark.parametrize("status", ["failed", "cancelled", "timed_out"])
def test_it_stops_polling_a_run_that_ended_without_a_result(owner_client, owner, clip, status):
    run = make_run(owner, clip, status=status, error_message="The provider said no.")

    response = owner_client.get(
        reverse("run_status", args=[run.code]), headers={"HX-Request": "true"}
    )

    assert response.status_code == 286
    assert "hx-trigger" not in response.content.decode()
    assert f'data-status="{status}"' in response.content.decode()


def status_card(content: str) -> str:
    """The <div id="status-card"> element, up to its matching </div>."""
    start = content.index('<div id="status-card"')
    depth = 0
    for tag in re.finditer(r"<(/?)div\b", content[start:]):
        depth += -1 if tag.group(1) else 1
        if depth == 0:
            return content[start : start + tag.start() + len("</div>")]
    raise AssertionError("the status card is not closed")


def test_it_redirects_a_plain_poll_to_the_run_page_which_shows_the_same_card(
    owner_client, owner, clip
):
    run = make_run(owner, clip)
    url = reverse("run_status", args=[run.code])

    plain = owner_client.get(url)
    poll = owner_client.get(url, headers={"HX-Request": "true"})
    page = owner_client.get(run.get_absolute_url())

    assert plain.status_code == 302 and plain["Location"] == run.get_absolute_url()
    assert page.status_code == 200
    card = status_card(poll.content.decode())
    assert reverse("run_result", args=[run.code]) in card
    assert card == status_card(page.content.decode())


def test_it_renders_the_live_card_on_the_run_page(owner_client, owner, clip):
    run = make_run(owner, clip, status="pending")
    url = reverse("run_status", args=[run.code])

    poll = owner_client.get(url, headers={"HX-Request": "true"}).content.decode()
    page = owner_client.get(run.get_absolute_url()).content.decode()

    card, page_card = status_card(poll), status_card(page)
    opening = card[: card.index(">") + 1]
    assert html.unescape(f'hx-trigger="{POLL_TRIGGER}"') in html.unescape(opening)
    assert f'hx-get="{url}"' in opening
    assert page_card.startswith(opening)
    assert "Sending the job to the gateway" in card
    # Only the cancel form's CSRF token (masked afresh on each render) may differ.
    unmask = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')
    assert unmask.sub("", card) == unmask.sub("", page_card)

"""Accounts: invites while sign-up is closed, and log-in throttling (django-axes)."""

from __future__ import annotations

import html
import io
import re
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from playground.accounts.models import Invite, InviteUnusable
from tests.builders import signup_data

pytestmark = pytest.mark.django_db


def text_of(response) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode()))


def path_of(link: str) -> str:
    """The link as the test client asks for it: path and query string."""
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


@pytest.fixture
def closed(settings) -> None:
    settings.SIGNUP_ENABLED = False


# --- Invites ------------------------------------------------------------------------------


def test_it_lets_one_person_sign_up_with_an_invite_while_sign_up_is_closed(client, closed):
    invite = Invite.objects.create(email="new@example.com")
    url = path_of(invite.link())
    assert client.get(reverse("signup")).status_code == 404  # closed without an invite

    page = client.get(url)
    assert page.status_code == 200
    assert "You were invited as new@example.com" in text_of(page)
    response = client.post(url, signup_data("newcomer"))

    assert response.status_code == 302 and response["Location"] == reverse("generate")
    user = User.objects.get(username="newcomer")
    assert user.email == "new@example.com"
    invite.refresh_from_db()
    assert invite.used_by == user and invite.used_at is not None
    assert client.get(reverse("generate")).status_code == 200  # signed in already


def test_it_refuses_an_invite_the_second_time(client, closed):
    invite = Invite.objects.create(email="new@example.com")
    url = path_of(invite.link())
    assert client.post(url, signup_data("first")).status_code == 302

    other = Client()
    page = other.get(url)
    response = other.post(url, signup_data("second"))

    for answer in (page, response):
        assert answer.status_code == 410
        assert "This invite has already been used" in text_of(answer)
        assert "No account was created" in text_of(answer)
    assert not User.objects.filter(username="second").exists()
    assert Invite.objects.get(pk=invite.pk).used_by.username == "first"


def test_it_refuses_an_expired_invite(client, closed):
    invite = Invite.objects.create(
        email="late@example.com", expires_at=timezone.now() - timedelta(seconds=1)
    )
    url = path_of(invite.link())

    page = client.get(url)
    response = client.post(url, signup_data("latecomer"))

    for answer in (page, response):
        assert answer.status_code == 410
        assert "This invite has expired" in text_of(answer)
    assert not User.objects.filter(username="latecomer").exists()
    assert Invite.objects.get(pk=invite.pk).used_at is None


def test_it_makes_an_invite_that_lasts_a_week_by_default():
    invite = Invite.objects.create(email="new@example.com")

    assert timedelta(days=6, hours=23) < invite.expires_at - timezone.now() <= timedelta(days=7)
    assert len(invite.token) >= 40  # 32 random bytes, URL-safe


@pytest.mark.parametrize("token", ["forged", "a" * 43, "ключ", "x" * 5000])
def test_it_refuses_a_forged_invite(client, closed, token):
    Invite.objects.create(email="real@example.com")
    url = f"{reverse('signup')}?invite={token}"

    page = client.get(url)
    response = client.post(url, signup_data("forger"))

    for answer in (page, response):
        assert answer.status_code == 404
        assert "This invite link is not valid" in text_of(answer)
    assert not User.objects.filter(username="forger").exists()
    assert Invite.objects.get().used_at is None


def test_it_uses_an_invite_once_even_when_both_sign_ups_loaded_it_unused(closed):
    """The claim is the conditional UPDATE, not the copy of the row each request holds."""
    invite = Invite.objects.create(email="new@example.com")
    first, second = Invite.objects.get(pk=invite.pk), Invite.objects.get(pk=invite.pk)
    forms = []
    for username in ("first", "second"):
        form = UserCreationForm(signup_data(username))
        assert form.is_valid()
        forms.append(form)

    first.accept(forms[0])
    with pytest.raises(InviteUnusable):
        second.accept(forms[1])

    assert list(User.objects.values_list("username", flat=True)) == ["first"]  # rolled back
    assert Invite.objects.get(pk=invite.pk).used_by.username == "first"


@pytest.mark.django_db(transaction=True)
def test_it_makes_one_account_from_two_parallel_sign_ups_with_one_invite(settings, monkeypatch):
    settings.SIGNUP_ENABLED = False
    url = path_of(Invite.objects.create(email="new@example.com").link())
    # Both requests pass the view's early check before either claims the invite.
    both_checked = threading.Barrier(2)
    accept = Invite.accept

    def accept_together(self: Invite, form) -> User:  # type: ignore[no-untyped-def]
        both_checked.wait(timeout=10)
        return accept(self, form)

    monkeypatch.setattr(Invite, "accept", accept_together)
    answers: dict[str, int] = {}

    def sign_up(username: str) -> None:
        answers[username] = Client().post(url, signup_data(username)).status_code

    threads = [threading.Thread(target=sign_up, args=(name,)) for name in ("ann", "bob")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(answers.values()) == [302, 410]
    winner = User.objects.get()
    assert answers[winner.username] == 302
    assert Invite.objects.get().used_by == winner


def test_it_prints_an_invite_link_that_signs_up_from_the_command(client, closed, settings):
    settings.PUBLIC_BASE_URL = ""
    settings.PORT = 8123
    out = io.StringIO()

    call_command("invite", "friend@example.com", stdout=out, stderr=io.StringIO())

    link = out.getvalue().strip()
    invite = Invite.objects.get()
    assert link == f"http://127.0.0.1:8123/accounts/signup/?invite={invite.token}"
    assert invite.email == "friend@example.com" and invite.created_by is None
    response = client.post(path_of(link), signup_data("friend"))
    assert response.status_code == 302
    assert User.objects.get(username="friend").email == "friend@example.com"


def test_it_puts_the_public_address_in_the_commands_invite_link(settings):
    settings.PUBLIC_BASE_URL = "https://play.example.com"
    out = io.StringIO()

    call_command("invite", "friend@example.com", "--days", "2", stdout=out, stderr=io.StringIO())

    invite = Invite.objects.get()
    assert (
        out.getvalue().strip() == f"https://play.example.com/accounts/signup/?invite={invite.token}"
    )
    assert timedelta(days=1, hours=23) < invite.expires_at - timezone.now() <= timedelta(days=2)


def test_it_refuses_a_bad_email_in_the_invite_command():
    with pytest.raises(CommandError, match="not an email address"):
        call_command("invite", "not-an-email", stdout=io.StringIO(), stderr=io.StringIO())
    assert not Invite.objects.exists()


def test_it_shows_a_new_invites_link_in_the_admin(admin_client, admin_user, settings):
    settings.PUBLIC_BASE_URL = "https://play.example.com"
    expires = timezone.now() + timedelta(days=7)

    response = admin_client.post(
        reverse("admin:accounts_invite_add"),
        {
            "email": "friend@example.com",
            "expires_at_0": expires.strftime("%Y-%m-%d"),
            "expires_at_1": expires.strftime("%H:%M:%S"),
        },
        follow=True,
    )

    invite = Invite.objects.get()
    assert invite.created_by == admin_user
    assert invite.link() in text_of(response)
    change = admin_client.get(reverse("admin:accounts_invite_change", args=[invite.pk]))
    assert invite.link() in text_of(change)


def test_it_mentions_invites_on_the_login_page_when_sign_up_is_closed(client, closed):
    page = text_of(client.get(reverse("login")))

    assert "Sign-up is closed" in page and "invite link" in page


# --- Log-in throttling --------------------------------------------------------------------


def log_in(client: Client, username: str, password: str):  # type: ignore[no-untyped-def]
    return client.post(reverse("login"), {"username": username, "password": password})


def test_it_locks_out_a_username_after_five_wrong_passwords(client, owner):
    answers = [log_in(client, "owner", "wrong-password").status_code for _ in range(5)]
    assert answers == [200] * 4 + [429]  # the form again, then the fifth failure locks

    response = log_in(client, "owner", "pw-owner-123")  # the right password, too late

    assert response.status_code == 429
    assert "Too many failed log-ins" in text_of(response)
    assert "Try again in 15 minutes" in text_of(response)
    assert client.get(reverse("generate")).status_code == 302  # not signed in


def test_it_locks_out_per_username_and_address(client, owner, stranger):
    for _ in range(5):
        log_in(client, "owner", "wrong-password")

    assert log_in(client, "stranger", "pw-stranger-123").status_code == 302  # same address
    elsewhere = Client(REMOTE_ADDR="203.0.113.7")
    assert log_in(elsewhere, "owner", "pw-owner-123").status_code == 302  # same username


def test_it_ends_a_lockout_after_the_cool_off(client, owner):
    for _ in range(5):
        log_in(client, "owner", "wrong-password")
    assert log_in(client, "owner", "pw-owner-123").status_code == 429

    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))

    assert log_in(client, "owner", "pw-owner-123").status_code == 302


def test_it_forgets_earlier_failures_after_a_good_log_in(client, owner):
    for _ in range(4):
        log_in(client, "owner", "wrong-password")
    assert log_in(client, "owner", "pw-owner-123").status_code == 302
    client.logout()

    for _ in range(4):
        log_in(client, "owner", "wrong-password")

    assert log_in(client, "owner", "pw-owner-123").status_code == 302  # 4 + 4 is no lockout


def test_it_throttles_the_admin_log_in_too(client, admin_user):
    url = reverse("admin:login")
    for _ in range(5):
        client.post(url, {"username": "admin", "password": "wrong-password"})

    response = client.post(url, {"username": "admin", "password": "password"})

    assert response.status_code == 429 and "Too many failed log-ins" in text_of(response)

"""Invites: how an owner lets one person sign up while sign-up is closed."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.forms import UserCreationForm
from django.contrib.auth.models import User
from django.db import models, transaction
from django.urls import reverse
from django.utils import timezone

INVITE_DAYS = 7


def new_token() -> str:
    return secrets.token_urlsafe(32)


def default_expiry() -> datetime:
    return timezone.now() + timedelta(days=INVITE_DAYS)


class InviteUnusable(Exception):
    """The invite was used up (or expired) while the sign-up form was being filled in."""


class Invite(models.Model):
    email = models.EmailField(help_text="Who the invite is for; it becomes their account's email.")
    # The link's secret: anyone holding it may sign up once, so it is unguessable.
    token = models.CharField(max_length=64, unique=True, default=new_token, editable=False)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(default=default_expiry)
    used_at = models.DateTimeField(null=True, blank=True, editable=False)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Invite for {self.email}"

    @property
    def state(self) -> str:
        if self.used_at:
            return "used"
        if self.expires_at <= timezone.now():
            return "expired"
        return "open"

    @property
    def problem(self) -> str:
        """Why this invite cannot be used, or "" when it can."""
        return {
            "used": "This invite has already been used. If it was you, log in; "
            "otherwise ask for a new invite.",
            "expired": "This invite has expired. Ask whoever sent it for a new one.",
            "open": "",
        }[self.state]

    def link(self) -> str:
        # The same base as the signed reference URLs (runs.references.public_base_url).
        base = settings.PUBLIC_BASE_URL or f"http://127.0.0.1:{settings.PORT}"
        return f"{base}{reverse('signup')}?{urlencode({'invite': self.token})}"

    def accept(self, form: UserCreationForm[User]) -> User:
        """Create the form's user and use this invite up: both, or neither.

        The conditional UPDATE is the claim. Of two sign-ups racing with one invite, the
        second finds `used_at` set (PostgreSQL makes it wait for the first's row lock;
        SQLite's IMMEDIATE transactions run one at a time), so its new user is rolled back.
        """
        with transaction.atomic():
            form.instance.email = self.email
            user = form.save()
            now = timezone.now()
            claimed = Invite.objects.filter(pk=self.pk, used_at=None, expires_at__gt=now).update(
                used_at=now, used_by=user
            )
            if not claimed:
                raise InviteUnusable(self.token)
        self.used_at, self.used_by = now, user
        return user

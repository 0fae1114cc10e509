from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.core.validators import validate_email
from django.utils import timezone

from playground.accounts.models import INVITE_DAYS, Invite


class Command(BaseCommand):
    help = "Invite someone to sign up (it works while sign-up is closed); prints the link."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("email")
        parser.add_argument("--days", type=int, default=INVITE_DAYS, help="how long the link works")

    def handle(self, *args: Any, email: str, days: int, **options: Any) -> None:
        try:
            validate_email(email)
        except ValidationError as error:
            raise CommandError(f"{email!r} is not an email address.") from error
        if days < 1:
            raise CommandError("--days must be at least 1.")
        invite = Invite.objects.create(email=email, expires_at=timezone.now() + timedelta(days))
        expires = invite.expires_at.strftime("%Y-%m-%d %H:%M UTC")
        self.stderr.write(f"Send {email} this link; it works once, until {expires}:")
        self.stdout.write(invite.link())

"""Request types for views, so editors and mypy know what the middleware adds."""

from __future__ import annotations

import uuid

from django.contrib.auth.models import User
from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxRequest(HttpRequest):
    htmx: HtmxDetails


class AuthenticatedRequest(HtmxRequest):
    """A request the login-required middleware let through: its user is signed in."""

    user: User


def is_uuid(value: str) -> bool:
    """Whether a code a request carries is a UUID at all (before it is looked up)."""
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.auth import middleware
from django.http import HttpRequest, HttpResponseBase


class LoginRequiredMiddleware(middleware.LoginRequiredMiddleware):
    """Django's, but it looks at @login_not_required first.

    Django's checks `request.user` first, which costs a session and a user query on every
    public request: the simulator, webhooks, health checks and the keyed status poll.
    """

    def process_view(
        self, request: HttpRequest, view_func: Callable[..., Any], view_args: Any, view_kwargs: Any
    ) -> HttpResponseBase | None:
        if not getattr(view_func, "login_required", True):
            return None
        return super().process_view(request, view_func, view_args, view_kwargs)

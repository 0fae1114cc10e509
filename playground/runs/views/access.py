"""Finding the object a request is about: the signed-in user's own, or 404.

Never 403: other users' runs and references don't exist for you.
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404

from playground.lib.requests import AuthenticatedRequest
from playground.runs.models import Reference, Run


def get_run(request: AuthenticatedRequest, code: str) -> Run:
    """The signed-in user's run, or 404."""
    return get_object_or_404(
        Run.objects.visible().select_related("reference", "parent", "batch"),
        code=code,
        user=request.user,
    )


def get_reference(request: AuthenticatedRequest, code: str) -> Reference:
    return get_object_or_404(Reference, code=code, user=request.user)

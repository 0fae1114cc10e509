from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from playground import kling

LIMITS = kling.limits()


def gateway(request: HttpRequest) -> dict[str, object]:
    """Every page shows whether runs go to the simulator or to the real gateway."""
    return {
        "simulator_enabled": settings.SIMULATOR_ENABLED,
        "signup_enabled": settings.SIGNUP_ENABLED,
        "limits": LIMITS,
    }

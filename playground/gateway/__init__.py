"""How this instance reaches the provider: the client, configured from settings."""

from __future__ import annotations

from typing import Any

from django.conf import settings

from playground.gateway.client import Gateway, GatewayError, Job, JobsAPI
from playground.kling import MODEL_ID

__all__ = ["Gateway", "GatewayError", "Job", "JobsAPI", "gateway_from_settings"]


def gateway_from_settings(**overrides: Any) -> Gateway:
    options: dict[str, Any] = {
        "model": MODEL_ID,
        "timeout": settings.AIGATEWAY_TIMEOUT_SECONDS,
    }
    options.update(overrides)
    # With no key of its own, the instance talks to its simulator, which wants its own key.
    key = settings.AIGATEWAY_API_KEY or (
        settings.SIMULATOR_API_KEY if settings.SIMULATOR_ENABLED else ""
    )
    return Gateway(settings.AIGATEWAY_BASE_URL, key, **options)

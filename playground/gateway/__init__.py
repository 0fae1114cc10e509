"""How this instance reaches the provider: the client, configured from settings."""

from __future__ import annotations

from django.conf import settings

from playground.gateway.client import Gateway, GatewayError, Job

__all__ = ["Gateway", "GatewayError", "Job", "gateway_from_settings"]


def gateway_from_settings(**overrides: object) -> Gateway:
    options: dict = {
        "model": settings.AIGATEWAY_MODEL,
        "timeout": settings.AIGATEWAY_TIMEOUT_SECONDS,
    }
    options.update(overrides)
    return Gateway(settings.AIGATEWAY_BASE_URL, settings.AIGATEWAY_API_KEY, **options)

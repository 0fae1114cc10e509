"""Money is integer micro-dollars everywhere; these helpers are the only conversions."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from playground.kling import PRICE_PER_SECOND_MICROS

MICROS = 1_000_000


def cost_of_seconds(seconds: float | Decimal) -> int:
    """What the provider bills for this much output video, in micro-dollars."""
    exact = Decimal(str(seconds)) * PRICE_PER_SECOND_MICROS
    return int(exact.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def usd(micros: int | None, places: int = 3) -> str:
    """$0.840 for 840_000; three places because $0.168/s makes tenths of a cent common."""
    if micros is None:
        return "—"
    value = (Decimal(micros) / MICROS).quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
    return f"${value:,}"


def micros_from_usd(text: str) -> int:
    return int((Decimal(text) * MICROS).quantize(Decimal(1), ROUND_HALF_UP))

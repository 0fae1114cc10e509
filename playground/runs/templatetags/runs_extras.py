from __future__ import annotations

from datetime import timedelta

from django import template

from playground.runs import export
from playground.runs.models import Run
from playground.runs.money import usd as format_usd

register = template.Library()


@register.filter
def usd(micros: int | None) -> str:
    return format_usd(micros)


@register.filter
def signed_usd(micros: int) -> str:
    """+$0.042 or −$0.042: how far a bill is from its estimate."""
    return ("+" if micros >= 0 else "−") + format_usd(abs(micros))


@register.inclusion_tag("runs/billed.html")
def billed(run: Run) -> dict[str, Run]:
    """A run's cost as the history and the run page show it: billed or estimated, the
    provider's figure or ours, simulated or real, or unknown."""
    return {"run": run}


@register.filter
def clock(delta: timedelta | None) -> str:
    """1:05 for sixty-five seconds; 1:02:03 past an hour."""
    if delta is None:
        return ""
    seconds = max(0, int(delta.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}:{minutes:02}:{seconds:02}" if hours else f"{minutes}:{seconds:02}"


@register.filter
def export_json(run: Run) -> str:
    return export.as_json(run)


@register.filter
def export_curl(run: Run) -> str:
    return export.as_curl(run)

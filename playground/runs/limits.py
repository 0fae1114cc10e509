"""What a user may still run and spend: the in-flight cap, the user's monthly budget and the
instance's, all checked before any paid call.

The form checks them first, to answer with a message at once. `create_run` checks them
again inside the transaction that creates the run, holding a lock on the user's row, so N
parallel submits (different idempotency keys) can never get past them together: on
PostgreSQL `SELECT … FOR UPDATE` on the user row queues them; on SQLite every write
transaction here begins IMMEDIATE (settings.py), which takes the database's write lock up
front, so they queue just the same.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from playground.runs.models import Run, TrackerLease
from playground.runs.money import micros_from_usd, usd
from playground.runs.references import storage_use

# A row of TrackerLease's table used only as a lock (it is never leased).
INSTANCE_BUDGET_LOCK = "instance-budget"


class LimitReached(Exception):
    """A run would break a cap or a budget; the message says which, in the user's words."""


def budget_left_micros(user: User) -> int | None:
    """What is left of the user's monthly budget (None when there is no budget)."""
    if not settings.MONTHLY_BUDGET_USD:
        return None
    spent = Run.objects.for_user(user).counted_here().this_month().committed_micros()
    return max(0, micros_from_usd(settings.MONTHLY_BUDGET_USD) - spent)


def instance_budget_left_micros() -> int | None:
    """What is left of the instance's monthly budget, all users together (None: no budget)."""
    if not settings.INSTANCE_MONTHLY_BUDGET_USD:
        return None
    spent = Run.objects.counted_here().this_month().committed_micros()
    return max(0, micros_from_usd(settings.INSTANCE_MONTHLY_BUDGET_USD) - spent)


def refusal(user: User, cost_micros: int, runs: int = 1) -> str:
    """Why `runs` more runs costing `cost_micros` in all may not start now, or ''."""
    cap = settings.MAX_INFLIGHT_RUNS_PER_USER
    if cap and Run.objects.for_user(user).in_flight().count() + runs > cap:
        return (
            f"You already have {cap} runs in progress, the most allowed at once. "
            "Wait for one to finish or cancel one."
        )
    storage = storage_use(user)
    if storage.quota and storage.used > storage.quota:
        return (
            f"Your files take {storage.used_label} of your {storage.quota_label} storage "
            "quota. Delete some runs or references to make room for a new result."
        )
    left = budget_left_micros(user)
    if left is not None and cost_micros > left:
        return (
            f"This run would cost {usd(cost_micros)}, but only {usd(left)} of this month's "
            "budget is left."
        )
    left = instance_budget_left_micros()
    if left is not None and cost_micros > left:
        return (
            f"This run would cost {usd(cost_micros)}, but only {usd(left)} of this "
            "instance's budget for the month is left. Ask its owner to raise "
            "INSTANCE_MONTHLY_BUDGET_USD."
        )
    return ""


def create_run(user: User, **fields: Any) -> Run:
    """Create a run if the limits allow it, checked under a lock on the user's row.

    The same idempotency key finds the run it made before (a double-click, or a race with
    another request carrying the same form). Raises LimitReached otherwise.
    """
    key = fields["idempotency_key"]
    try:
        with transaction.atomic():
            if settings.INSTANCE_MONTHLY_BUDGET_USD:
                # The instance's budget is shared by all users: one row queues them all.
                TrackerLease.objects.get_or_create(
                    name=INSTANCE_BUDGET_LOCK, defaults={"expires_at": timezone.now()}
                )
                TrackerLease.objects.select_for_update().filter(name=INSTANCE_BUDGET_LOCK).first()
            User.objects.select_for_update().filter(pk=user.pk).first()
            existing = Run.objects.filter(user=user, idempotency_key=key).first()
            if existing:
                return existing
            if problem := refusal(user, fields["estimated_cost_micros"]):
                raise LimitReached(problem)
            return Run.objects.create(
                user=user,
                simulated=settings.SIMULATOR_ENABLED,
                next_poll_at=timezone.now(),
                **fields,
            )
    except IntegrityError:  # the same form won a race in another request
        return Run.objects.get(user=user, idempotency_key=key)

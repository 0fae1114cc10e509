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

import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.contrib.auth.models import User
from django.db import IntegrityError, transaction
from django.utils import timezone

from playground.runs.batches import Variant, estimated_micros, run_key
from playground.runs.models import Batch, Reference, Run, RunImage, TrackerLease
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
    if cap and (in_flight := Run.objects.for_user(user).in_flight().count()) + runs > cap:
        if runs == 1:
            return (
                f"You already have {cap} runs in progress, the most allowed at once. "
                "Wait for one to finish or cancel one."
            )
        room = max(0, cap - in_flight)
        return (
            f"This batch makes {runs} runs, but you can start only {room} more now "
            f"({in_flight} in progress, at most {cap} at once). Make fewer variants, or "
            "wait for runs to finish."
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
            f"{_what(runs)} would cost {usd(cost_micros)}, but only {usd(left)} of this month's "
            "budget is left."
        )
    left = instance_budget_left_micros()
    if left is not None and cost_micros > left:
        return (
            f"{_what(runs)} would cost {usd(cost_micros)}, but only {usd(left)} of this "
            "instance's budget for the month is left. Ask its owner to raise "
            "INSTANCE_MONTHLY_BUDGET_USD."
        )
    return ""


def _what(runs: int) -> str:
    return "This run" if runs == 1 else f"These {runs} runs"


@contextmanager
def _limits_locked(user: User) -> Iterator[None]:
    """A transaction in which the user's (and the instance's) limits can't move under us:
    parallel submits of this user queue here, each seeing what the one before created."""
    with transaction.atomic():
        if settings.INSTANCE_MONTHLY_BUDGET_USD:
            # The instance's budget is shared by all users: one row queues them all.
            TrackerLease.objects.get_or_create(
                name=INSTANCE_BUDGET_LOCK, defaults={"expires_at": timezone.now()}
            )
            TrackerLease.objects.select_for_update().filter(name=INSTANCE_BUDGET_LOCK).first()
        User.objects.select_for_update().filter(pk=user.pk).first()
        yield


def create_run(user: User, *, images: Sequence[Reference] = (), **fields: Any) -> Run:
    """Create a run if the limits allow it, checked under a lock on the user's row.

    The same idempotency key finds the run it made before (a double-click, or a race with
    another request carrying the same form). Raises LimitReached otherwise. `images` are
    the run's @Image1 … in order, saved in the same transaction.
    """
    key = fields["idempotency_key"]
    try:
        with _limits_locked(user):
            existing = Run.objects.filter(user=user, idempotency_key=key).first()
            if existing:
                return existing
            if problem := refusal(user, fields["estimated_cost_micros"]):
                raise LimitReached(problem)
            run = Run.objects.create(
                user=user,
                simulated=settings.SIMULATOR_ENABLED,
                next_poll_at=timezone.now(),
                **fields,
            )
            RunImage.objects.bulk_create(
                RunImage(run=run, reference=image, position=position)
                for position, image in enumerate(images, start=1)
            )
            return run
    except IntegrityError:  # the same form won a race in another request
        return Run.objects.get(user=user, idempotency_key=key)


def create_batch(
    user: User,
    variants: Sequence[Variant],
    *,
    idempotency_key: uuid.UUID,
    images: Sequence[Reference] = (),
    **common: Any,
) -> Batch:
    """Create every run of a batch, or none: the whole batch is checked against the cap
    and the budgets at once (a batch is never half-sent), under the same lock as a run.

    `common` holds what the runs share (reference, aspect ratio, audio, parent). The same
    form key finds the batch it made before.
    """
    total = estimated_micros(variants)
    try:
        with _limits_locked(user):
            existing = Batch.objects.filter(user=user, idempotency_key=idempotency_key).first()
            if existing:
                return existing
            if problem := refusal(user, total, runs=len(variants)):
                raise LimitReached(f"Nothing was sent. {problem}")
            batch = Batch.objects.create(user=user, idempotency_key=idempotency_key)
            now = timezone.now()
            runs = Run.objects.bulk_create(
                Run(
                    user=user,
                    batch=batch,
                    idempotency_key=run_key(idempotency_key, index),
                    prompt=variant.prompt,
                    duration=variant.duration,
                    estimated_cost_micros=variant.estimated_cost_micros,
                    simulated=settings.SIMULATOR_ENABLED,
                    next_poll_at=now,
                    **common,
                )
                for index, variant in enumerate(variants)
            )
            RunImage.objects.bulk_create(
                RunImage(run=run, reference=image, position=position)
                for run in runs
                for position, image in enumerate(images, start=1)
            )
            return batch
    except IntegrityError:  # the same form won a race in another request
        return Batch.objects.get(user=user, idempotency_key=idempotency_key)

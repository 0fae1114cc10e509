"""Batches: the runs one press of Generate makes, grouped on one page."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils import timezone

from playground.runs.models.runs import ACTIVE, Run, RunQuerySet, Status


class Batch(models.Model):
    """Runs made by one press of Generate: variants of a prompt, durations, repeats, all
    against one reference. Its runs are ordinary runs; the batch groups them on one page."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="batches"
    )
    # The form's key: a resubmitted form finds the batch it already made.
    idempotency_key = models.UUIDField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"], name="one_batch_per_form_submission"
            ),
        ]

    def __str__(self) -> str:
        return str(self.code)

    def get_absolute_url(self) -> str:
        return reverse("batch", args=[self.code])

    def shareable_runs(self) -> RunQuerySet:
        """The variants a share link to this batch shows, in the order they were made."""
        return Run.objects.filter(batch=self).shareable().order_by("created_at", "pk")

    def has_nothing_to_share(self) -> bool:
        """No variant to show, and none still running that could be."""
        return (
            not self.shareable_runs().exists() and not self.runs.filter(status__in=ACTIVE).exists()
        )

    @staticmethod
    def totals(runs: Sequence[Run]) -> BatchTotals:
        """What the batch's runs cost together (runs already loaded: no query)."""
        return BatchTotals(
            runs=len(runs),
            active=sum(run.is_active for run in runs),
            completed=sum(run.status == Status.COMPLETED for run in runs),
            estimated_micros=sum(run.estimated_cost_micros for run in runs),
            billed_micros=sum(run.billed_cost_micros or 0 for run in runs),
            billing_unknown=any(run.billing_unknown for run in runs),
            simulated=any(run.simulated for run in runs),
        )


@dataclass(frozen=True)
class BatchTotals:
    runs: int
    active: int
    completed: int
    estimated_micros: int
    billed_micros: int
    billing_unknown: bool
    simulated: bool

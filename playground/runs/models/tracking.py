"""What the trackers keep beside the runs: webhook deliveries already applied, named
rows to lock, and each worker's tracker loop as it reports itself."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone


class WebhookEvent(models.Model):
    """A webhook delivery already applied, by the gateway's event id: a replay (the gateway
    retries, an attacker resends) finds it here and changes nothing."""

    event_id = models.CharField(max_length=128, unique=True)
    job_id = models.CharField(max_length=128, blank=True)
    received_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.event_id


class TrackerLease(models.Model):
    """A named row to lock (the instance budget's lock); it once held the single tracker's
    lease, before every worker ran a tracker of its own (see `Tracker`)."""

    name = models.CharField(max_length=32, primary_key=True)
    holder = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder or 'nobody'} until {self.expires_at}"


class Tracker(models.Model):
    """One worker's tracker loop, as it reports itself while it runs (runs/tracker.py).

    Every `qcluster` process runs one; they share the work through per-run claims. The
    rows tell an operator which workers are tracking and how much each did, and let a
    tracker on the same host hand a dead one's claims back at once.
    """

    holder = models.CharField(max_length=120, unique=True)  # host:pid:random
    started_at = models.DateTimeField(default=timezone.now)
    seen_at = models.DateTimeField(default=timezone.now)
    stopped_at = models.DateTimeField(null=True, blank=True)
    steps = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"tracker {self.holder} ({self.steps} steps)"

    @property
    def live(self) -> bool:
        recent = timezone.now() - timedelta(seconds=settings.TRACKER_LEASE_SECONDS)
        return self.stopped_at is None and self.seen_at > recent

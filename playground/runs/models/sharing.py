"""Share links: public, read-only, expiring links to a finished run or a whole batch."""

from __future__ import annotations

import secrets
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import salted_hmac

from playground.runs.models.batches import Batch
from playground.runs.models.runs import Run, RunQuerySet

# What the share form offers, in its order: the key it posts, its label, the link's life.
SHARE_EXPIRIES: dict[str, tuple[str, timedelta | None]] = {
    "never": ("Never", None),
    "1d": ("1 day", timedelta(days=1)),
    "7d": ("7 days", timedelta(days=7)),
    "30d": ("30 days", timedelta(days=30)),
}
DEFAULT_SHARE_EXPIRY = "7d"


class ShareLinkQuerySet(models.QuerySet["ShareLink"]):
    def live(self) -> ShareLinkQuerySet:
        """Links that still open: not revoked, not expired."""
        now = timezone.now()
        return self.filter(revoked_at=None).filter(Q(expires_at=None) | Q(expires_at__gt=now))


class ShareLink(models.Model):
    """A public, read-only link to one finished run or to a whole batch.

    The token is the only key: it is not the run's code, so sharing never exposes the
    private address, and revoking or expiring a link closes it without touching the run.
    """

    token = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="share_links"
    )
    run = models.ForeignKey(
        Run, on_delete=models.CASCADE, null=True, blank=True, related_name="share_links"
    )
    batch = models.ForeignKey(
        Batch, on_delete=models.CASCADE, null=True, blank=True, related_name="share_links"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)  # None: never
    revoked_at = models.DateTimeField(null=True, blank=True)
    views = models.PositiveIntegerField(default=0)

    objects = ShareLinkQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(run__isnull=False, batch__isnull=True)
                | Q(run__isnull=True, batch__isnull=False),
                name="share_link_has_one_target",
            ),
        ]

    def __str__(self) -> str:
        return self.token

    def variant_key(self, run: Run) -> str:
        """How a batch link names one of its runs in its files' URLs: derived from the
        link's token and the run, so the public page never shows a run's private code."""
        return salted_hmac("share-variant", f"{self.token}:{run.code}").hexdigest()[:20]

    @classmethod
    def create(
        cls,
        user: User,
        *,
        run: Run | None = None,
        batch: Batch | None = None,
        expires_in: timedelta | None = None,
    ) -> ShareLink:
        """A new link (a run may have several, say one per recipient); None: never expires."""
        now = timezone.now()
        return cls.objects.create(
            token=secrets.token_urlsafe(18),
            user=user,
            run=run,
            batch=batch,
            created_at=now,
            expires_at=now + expires_in if expires_in is not None else None,
        )

    @property
    def is_expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= timezone.now()

    @property
    def is_live(self) -> bool:
        return self.revoked_at is None and not self.is_expired

    def revoke(self) -> bool:
        """Close the link for good. False if it was revoked already (the first time stays)."""
        now = timezone.now()
        if not ShareLink.objects.filter(pk=self.pk, revoked_at=None).update(revoked_at=now):
            return False
        self.revoked_at = now
        return True

    def register_view(self) -> None:
        # One UPDATE: two visitors at once must both count.
        ShareLink.objects.filter(pk=self.pk).update(views=models.F("views") + 1)

    def shared_runs(self) -> RunQuerySet:
        """What the link shows: its run, or every completed variant of its batch."""
        if self.batch is not None:
            return self.batch.shareable_runs()
        return Run.objects.filter(share_links=self).shareable()

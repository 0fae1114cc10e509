"""The references a run is made from: uploaded videos and images, kept per user and
reusable, and "Fix it", the conversion of a video the model would refuse."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.db import models
from django.db.models import Q
from django.utils import timezone

from playground.lib import video
from playground.lib.media import size_label


class ReferenceKind(models.TextChoices):
    VIDEO = "video", "Video"
    IMAGE = "image", "Image"


class Reference(models.Model):
    """An uploaded reference, kept per user and reusable across runs: the video that guides
    the shot (@Video1), or an image the prompt cites (@Image1 … @Image4)."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="references"
    )
    kind = models.CharField(
        max_length=8, choices=ReferenceKind.choices, default=ReferenceKind.VIDEO
    )
    # A conformed copy ("Fix it") remembers the original it was made from.
    derived_from = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="fixes"
    )
    # Why the model would refuse this video as it is (too long, too big, wrong codec…).
    # Such a video is kept only so it can be fixed; it is never sent to the provider.
    problems = models.TextField(blank=True)
    name = models.CharField(max_length=255)
    file = models.FileField(max_length=255)
    poster = models.FileField(max_length=255, blank=True)
    # An H.264 copy for the page when browsers can't decode the original (HEVC, MPEG-4).
    preview = models.FileField(max_length=255, blank=True)
    # Kept beside the name so the storage quota is one query, never a HEAD per file.
    preview_bytes = models.PositiveBigIntegerField(default=0)
    format_name = models.CharField(max_length=64)
    codec = models.CharField(max_length=32)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    fps = models.FloatField(default=0)  # 0 for an image
    duration = models.FloatField(default=0)  # 0 for an image
    size = models.PositiveBigIntegerField()
    has_audio = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "kind", "-created_at"], name="reference_library_idx")
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def resolution(self) -> str:
        return f"{self.width}×{self.height}"

    @property
    def facts(self) -> str:
        return f"{self.duration:.3g} s · {self.resolution} · {self.fps:g} fps"

    @property
    def is_image(self) -> bool:
        return self.kind == ReferenceKind.IMAGE

    @property
    def is_usable(self) -> bool:
        return not self.problems

    @property
    def needs_preview(self) -> bool:
        # A Matroska/WebM upload (kept only to be fixed) is served as video/mp4 too.
        return not self.is_image and (
            self.codec not in video.BROWSER_CODECS or self.format_name != video.MP4_FAMILY
        )

    @property
    def size_label(self) -> str:
        return size_label(self.size)


class FixStatus(models.TextChoices):
    QUEUED = "queued", "Waiting"
    RUNNING = "running", "Converting"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


# Past the previews cluster's timeout (600 s) and retry (660 s), settings.Q_CLUSTER: a fix
# still RUNNING then lost its worker.
FIX_STALE_AFTER = timedelta(minutes=15)


class ReferenceFix(models.Model):
    """ "Fix it": a conversion of a video the model would refuse (too long, too big, too
    fast, another codec) into a copy it takes, made by a background task. The original is
    kept; the copy becomes a new reference in the library."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reference_fixes"
    )
    source = models.ForeignKey(Reference, on_delete=models.CASCADE, related_name="fix_jobs")
    # The segment to keep, in seconds of the source (None: up to its end).
    start = models.FloatField(default=0)
    end = models.FloatField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=FixStatus.choices, default=FixStatus.QUEUED)
    progress = models.FloatField(default=0)  # 0..1, written by the task as it goes
    error_message = models.TextField(blank=True)
    result = models.ForeignKey(
        Reference, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    # When a worker took it: once taken, a fix that had waited long in a busy queue is not
    # stale for that (a fix still waiting after FIX_STALE_AFTER is given up, as before).
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"fix {self.code} of {self.source_id} ({self.status})"

    @property
    def is_final(self) -> bool:
        return self.status in (FixStatus.DONE, FixStatus.FAILED)

    @property
    def percent(self) -> int:
        return round(100 * self.progress)

    # Each change below is one conditional UPDATE from the state it expects, so a task
    # delivered twice (django-q2 delivers at least once) converts the video once.

    def claim(self) -> bool:
        """QUEUED → RUNNING, before any work. A RUNNING fix is taken again only once it is
        older than FIX_STALE_AFTER: its worker died, and django-q2 delivers it again."""
        now = timezone.now()
        if not ReferenceFix.objects.filter(
            Q(status=FixStatus.QUEUED) | _running_since_before(now - FIX_STALE_AFTER),
            pk=self.pk,
        ).update(status=FixStatus.RUNNING, progress=0, started_at=now):
            return False
        self.status, self.progress, self.started_at = FixStatus.RUNNING, 0, now
        return True

    def record_progress(self, fraction: float) -> None:
        ReferenceFix.objects.filter(pk=self.pk, status=FixStatus.RUNNING).update(
            progress=min(max(fraction, 0.0), 1.0)
        )

    def finish(self, result: Reference) -> bool:
        """RUNNING → DONE with the conformed copy. False if the fix was not running here."""
        now = timezone.now()
        if not ReferenceFix.objects.filter(pk=self.pk, status=FixStatus.RUNNING).update(
            status=FixStatus.DONE, progress=1, result=result, finished_at=now
        ):
            return False
        self.status, self.progress, self.result = FixStatus.DONE, 1, result
        self.finished_at = now
        return True

    @classmethod
    def give_up_stale(cls, user: User) -> int:
        """End the user's fixes that have outlived any worker (killed at the cluster's
        timeout, their `fail` never ran): they stop counting as under way, their page stops
        polling, and the same segment can be asked for again."""
        stale = timezone.now() - FIX_STALE_AFTER
        return cls.objects.filter(
            Q(status=FixStatus.QUEUED, created_at__lt=stale) | _running_since_before(stale),
            user=user,
        ).update(
            status=FixStatus.FAILED,
            error_message="The conversion stopped before it finished (it took too long, or "
            "its worker was stopped). Try again, perhaps with a shorter segment.",
            finished_at=timezone.now(),
        )

    def fail(self, message: str) -> None:
        ReferenceFix.objects.filter(
            pk=self.pk, status__in=[FixStatus.QUEUED, FixStatus.RUNNING]
        ).update(status=FixStatus.FAILED, error_message=message, finished_at=timezone.now())
        self.refresh_from_db()


def _running_since_before(moment: datetime) -> Q:
    """Fixes a worker took before `moment` (older rows, made before started_at was kept,
    by when they were asked for)."""
    return Q(status=FixStatus.RUNNING) & (
        Q(started_at__lt=moment) | Q(started_at=None, created_at__lt=moment)
    )

"""Runs and their references. Every status change is a method here, guarded by a
conditional UPDATE so two processes never both act on one run (and never pay twice)."""

from __future__ import annotations

import logging
import secrets
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.core import signing
from django.db import models
from django.db.models import Q, Sum
from django.urls import reverse
from django.utils import timezone

from playground.lib import video
from playground.runs.money import cost_of_seconds

if TYPE_CHECKING:
    from playground.gateway import Gateway, Job

log = logging.getLogger(__name__)


def media_path(*parts: str) -> Path:
    return Path(settings.MEDIA_ROOT).joinpath(*parts)


class Reference(models.Model):
    """An uploaded reference video: kept per user and reusable across runs."""

    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="references"
    )
    name = models.CharField(max_length=255)
    file = models.FileField(max_length=255)
    poster = models.FileField(max_length=255, blank=True)
    # An H.264 copy for the page when browsers can't decode the original (HEVC, MPEG-4).
    preview = models.FileField(max_length=255, blank=True)
    format_name = models.CharField(max_length=64)
    codec = models.CharField(max_length=32)
    width = models.PositiveIntegerField()
    height = models.PositiveIntegerField()
    fps = models.FloatField()
    duration = models.FloatField()
    size = models.PositiveBigIntegerField()
    has_audio = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def resolution(self) -> str:
        return f"{self.width}×{self.height}"

    @property
    def facts(self) -> str:
        return f"{self.duration:.3g} s · {self.resolution} · {self.fps:g} fps"

    @property
    def needs_preview(self) -> bool:
        return self.codec not in video.BROWSER_CODECS

    @property
    def size_label(self) -> str:
        return f"{self.size / 1024 / 1024:.1f} MB"


class Status(models.TextChoices):
    PENDING = "pending", "Waiting to submit"
    SUBMITTING = "submitting", "Submitting"
    QUEUED = "queued", "Queued"
    PROCESSING = "processing", "Processing"
    FETCHING = "fetching", "Saving result"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    TIMED_OUT = "timed_out", "Timed out"


ACTIVE = [Status.PENDING, Status.SUBMITTING, Status.QUEUED, Status.PROCESSING, Status.FETCHING]
CANCELLABLE = [Status.PENDING, Status.SUBMITTING, Status.QUEUED, Status.PROCESSING]
FINAL = [Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.TIMED_OUT]
ASPECT_RATIOS = [
    ("auto", "Auto (match the reference)"),
    ("16:9", "16:9 landscape"),
    ("9:16", "9:16 portrait"),
    ("1:1", "1:1 square"),
]


class RunQuerySet(models.QuerySet["Run"]):
    def for_user(self, user: object) -> RunQuerySet:
        return self.filter(user=user)

    def in_flight(self) -> RunQuerySet:
        return self.filter(status__in=ACTIVE)

    def this_month(self) -> RunQuerySet:
        start = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return self.filter(created_at__gte=start)

    def committed_micros(self) -> int:
        """Money spent or promised: billed cost of finished runs, estimate of live ones."""
        totals = self.aggregate(
            billed=Sum("billed_cost_micros", filter=Q(status__in=FINAL)),
            pending=Sum("estimated_cost_micros", filter=Q(status__in=ACTIVE)),
        )
        return (totals["billed"] or 0) + (totals["pending"] or 0)

    def billed_micros(self) -> int:
        return self.aggregate(total=Sum("billed_cost_micros"))["total"] or 0


class Run(models.Model):
    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="runs"
    )
    # RESTRICT: a reference's file must outlive every run that points at it (deleting the
    # user still removes both together).
    reference = models.ForeignKey(Reference, on_delete=models.RESTRICT, related_name="runs")
    # From a hidden form field: a double-click or resubmit finds the run it already made.
    idempotency_key = models.UUIDField()

    prompt = models.TextField(max_length=2500)
    duration = models.PositiveSmallIntegerField(default=5)
    aspect_ratio = models.CharField(max_length=8, choices=ASPECT_RATIOS, default="auto")
    keep_audio = models.BooleanField(default=False)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    provider_job_id = models.CharField(max_length=128, blank=True, db_index=True)
    cancel_requested = models.BooleanField(default=False)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    # The last transient fault, shown while we keep trying ("the gateway is busy…").
    notice = models.CharField(max_length=500, blank=True)

    estimated_cost_micros = models.BigIntegerField(default=0)
    billed_cost_micros = models.BigIntegerField(null=True, blank=True)
    billed_seconds = models.DecimalField(max_digits=8, decimal_places=3, null=True, blank=True)

    result_url = models.TextField(blank=True)
    result = models.FileField(max_length=255, blank=True)
    poster = models.FileField(max_length=255, blank=True)
    result_width = models.PositiveIntegerField(null=True, blank=True)
    result_height = models.PositiveIntegerField(null=True, blank=True)
    result_fps = models.FloatField(null=True, blank=True)

    share_token = models.CharField(max_length=64, null=True, blank=True, unique=True)

    # The tracker's clock: when this run next needs attention. Claiming a run pushes it
    # forward by a lease, so a crashed worker's runs come back on their own.
    next_poll_at = models.DateTimeField(null=True, blank=True)
    provider_requests = models.PositiveIntegerField(default=0)
    # Submitted with a webhook_url: the webhook completes the run, polling is the fallback.
    webhook_expected = models.BooleanField(default=False)

    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    provider_completed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "idempotency_key"], name="one_run_per_form_submission"
            ),
        ]
        indexes = [
            # Serves the tracker's "what is due" query; only live runs are in it.
            models.Index(
                fields=["next_poll_at"], name="run_due_idx", condition=Q(status__in=ACTIVE)
            ),
            models.Index(fields=["user", "-created_at"], name="run_history_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.code} ({self.status})"

    # --- Reading ---------------------------------------------------------------------------

    def get_absolute_url(self) -> str:
        return reverse("run", args=[self.code])

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def is_final(self) -> bool:
        return self.status in FINAL

    @property
    def has_result(self) -> bool:
        return self.status == Status.COMPLETED and bool(self.result)

    @property
    def can_cancel(self) -> bool:
        # Not while fetching: the provider has finished and billed the job by then.
        return self.status in CANCELLABLE and not self.cancel_requested

    @property
    def provider_may_bill(self) -> bool:
        """A job the provider accepted (or may have: a submit was sent) may be billed."""
        return bool(self.provider_job_id) or self.status == Status.SUBMITTING

    @property
    def billing_differs(self) -> bool:
        return self.billed_cost_micros is not None and (
            self.billed_cost_micros != self.estimated_cost_micros
        )

    @property
    def started_at(self) -> datetime:
        return self.submitted_at or self.created_at

    @property
    def elapsed(self) -> timedelta:
        return (self.finished_at or timezone.now()) - self.started_at

    @property
    def result_resolution(self) -> str:
        return f"{self.result_width}×{self.result_height}" if self.result_width else ""

    @property
    def status_key(self) -> str:
        """A capability for this run's status poll, minted only into the owner's page.

        The poll is the hottest endpoint (every open run page, every 2 s); with this key it
        needs no session or user lookup, just one indexed read of the run.
        """
        return self.status_key_for(self.user_id, self.code)

    @staticmethod
    def status_key_for(user_id: int, code: uuid.UUID) -> str:
        return signing.Signer(salt="run-status").signature(f"{user_id}:{code}")

    # --- The user's actions -----------------------------------------------------------------

    def request_cancel(self) -> bool:
        """Cancel now if nothing was sent yet; else ask the tracker to cancel at the provider."""
        now = timezone.now()
        if Run.objects.filter(pk=self.pk, status=Status.PENDING).update(
            status=Status.CANCELLED, finished_at=now, billed_cost_micros=0, billed_seconds=0
        ):
            self.refresh_from_db()
            return True
        changed = Run.objects.filter(
            pk=self.pk, status__in=CANCELLABLE, cancel_requested=False
        ).update(cancel_requested=True, next_poll_at=now)
        self.refresh_from_db()
        return bool(changed)

    def share(self) -> str:
        if not self.share_token:
            self.share_token = secrets.token_urlsafe(18)
            self.save(update_fields=["share_token"])
        return self.share_token

    def revoke_share(self) -> None:
        self.share_token = None
        self.save(update_fields=["share_token"])

    # --- The tracker's steps ----------------------------------------------------------------

    @classmethod
    def claim_due(cls, limit: int, exclude: set[int]) -> list[Run]:
        """Take up to `limit` runs whose time has come and schedule their next turn.

        The claim itself pushes `next_poll_at` one poll interval ahead and counts the poll
        about to be made, so a poll that finds nothing new writes nothing more. A step that
        outlasts the interval is not taken again by this tracker (it excludes what it has in
        flight); after a crash the runs simply come due again.
        """
        now = timezone.now()
        ids = list(
            cls.objects.filter(status__in=ACTIVE, next_poll_at__lte=now)
            .exclude(pk__in=exclude)
            .order_by("next_poll_at")
            .values_list("pk", flat=True)[:limit]
        )
        if not ids:
            return []
        # A unique next time marks the rows this call claimed, even if another tracker races.
        marker = timedelta(microseconds=secrets.randbelow(999_999))
        until = now + poll_interval(webhook=False) + marker
        until_fallback = now + poll_interval(webhook=True) + marker
        polling = Q(status__in=[Status.QUEUED, Status.PROCESSING], cancel_requested=False)
        cls.objects.filter(pk__in=ids, next_poll_at__lte=now).update(
            next_poll_at=models.Case(
                models.When(polling & Q(webhook_expected=True), then=models.Value(until_fallback)),
                default=models.Value(until),
                output_field=models.DateTimeField(),
            ),
            provider_requests=models.Case(
                models.When(polling, then=models.F("provider_requests") + 1),
                default=models.F("provider_requests"),
                output_field=models.PositiveIntegerField(),
            ),
        )
        return list(
            cls.objects.filter(pk__in=ids, next_poll_at__in=[until, until_fallback]).select_related(
                "reference"
            )
        )

    def advance(self, gateway: Gateway) -> None:
        """Do the one next thing this run needs. Safe to repeat after a crash at any point."""
        from playground.gateway import GatewayError

        try:
            if self.status in (Status.PENDING, Status.SUBMITTING):
                self._submit(gateway)
            elif self.status == Status.FETCHING:
                self._fetch_result(gateway)  # the job is done and billed: a cancel is moot
            elif self.cancel_requested and self.provider_job_id:
                self._cancel_at_provider(gateway)
            elif self.status in (Status.QUEUED, Status.PROCESSING):
                self._poll(gateway)
        except GatewayError as exc:
            self._on_gateway_error(exc)

    def _on_gateway_error(self, exc: object) -> None:
        from playground.gateway import GatewayError

        assert isinstance(exc, GatewayError)
        if exc.retryable:
            wait = max(exc.retry_after or 0, 5.0)
            Run.objects.filter(pk=self.pk, status=self.status).update(
                notice=f"{exc.message} Trying again shortly.",
                next_poll_at=timezone.now() + timedelta(seconds=wait),
            )
            return
        if self.status in (Status.PENDING, Status.SUBMITTING):
            # The provider refused the job (key, credits, request): nothing was accepted,
            # so the run ends here at $0.
            self._finish(
                Status.FAILED,
                error_code=exc.code or str(exc.status or ""),
                error_message=exc.message,
            )
            return
        # A job the provider accepted may still run and bill, so a refusal now (a revoked
        # key, say) doesn't end the run: it says so and tries again; the deadline still
        # applies, and the result is still fetched if the job completes.
        Run.objects.filter(pk=self.pk, status=self.status).update(
            notice=exc.message, next_poll_at=timezone.now() + timedelta(seconds=60)
        )

    def _submit(self, gateway: Gateway) -> None:
        from playground.runs.references import signed_reference_url

        now = timezone.now()
        if self.cancel_requested and self.status == Status.PENDING:
            self._finish(Status.CANCELLED)  # nothing was ever sent
            return
        # A SUBMITTING run that was cancelled is still submitted (same idempotency key):
        # a lost answer may hide a job the provider made, and only its id lets us cancel it.
        # Claim: PENDING → SUBMITTING. A SUBMITTING run here is one whose worker died
        # mid-call; resubmitting with the same idempotency key returns the same job.
        if self.status == Status.PENDING and not Run.objects.filter(
            pk=self.pk, status=Status.PENDING
        ).update(status=Status.SUBMITTING):
            return
        self.status = Status.SUBMITTING
        job = gateway.submit(
            prompt=self.prompt,
            duration=self.duration,
            aspect_ratio=self.aspect_ratio,
            video_url=signed_reference_url(self.reference),
            keep_audio=self.keep_audio,
            idempotency_key=str(self.code),
            webhook_url=(webhook_url := webhook_url_for(self)),
        )
        updated = Run.objects.filter(pk=self.pk, status=Status.SUBMITTING).update(
            provider_job_id=job.id,
            status=Status.QUEUED,
            submitted_at=now,
            notice="",
            provider_requests=models.F("provider_requests") + 1,
            webhook_expected=bool(webhook_url),
            next_poll_at=now + poll_interval(webhook=bool(webhook_url)),
        )
        self.refresh_from_db()
        if updated and job.status != "queued":
            self.apply_job(job)

    def _poll(self, gateway: Gateway) -> None:
        deadline = (self.submitted_at or self.created_at) + timedelta(
            minutes=settings.RUN_DEADLINE_MINUTES
        )
        if timezone.now() > deadline:
            self._give_up(gateway)
            return
        job = gateway.get_job(self.provider_job_id)  # counted by claim_due
        self.apply_job(job)
        if self.status == Status.FETCHING:
            self._fetch_result(gateway)  # at once: the result is what the user waits for

    def apply_job(self, job: Job) -> None:
        """Take the provider's word for where the job is (from a poll or a webhook)."""
        now = timezone.now()
        active = [Status.QUEUED, Status.PROCESSING]
        runs = Run.objects.filter(pk=self.pk, provider_job_id=job.id)
        if job.status in ("queued", "processing"):
            # The common case, hundreds a second: nothing new, nothing written.
            if job.status == self.status and not self.notice:
                return
            if runs.filter(status__in=active).update(status=job.status, notice=""):
                self.status, self.notice = job.status, ""
            return
        elif job.status == "completed":
            # The provider bills the output it made: its duration, else what we asked for.
            seconds = job.result_duration if job.result_duration else self.duration
            runs.filter(status__in=active).update(
                status=Status.FETCHING,
                result_url=job.result_url,
                provider_completed_at=now,
                billed_seconds=round(seconds, 3),
                billed_cost_micros=cost_of_seconds(seconds),
                next_poll_at=now,
                notice="",
            )
        elif job.status == "failed":
            self._finish(
                Status.FAILED,
                error_code=job.error_code or "failed",
                error_message=job.error_message,
                only_from=active,
            )
        elif job.status == "cancelled":
            self._finish(Status.CANCELLED, only_from=[*active, Status.FETCHING])
        self.refresh_from_db()

    def _fetch_result(self, gateway: Gateway) -> None:
        """Copy the result into our storage, take a poster, and finish the run."""
        from playground.gateway import GatewayError

        target = media_path("results", f"{self.code}.mp4")
        target.parent.mkdir(parents=True, exist_ok=True)
        since = self.provider_completed_at or timezone.now()
        if timezone.now() - since > timedelta(minutes=settings.RUN_DEADLINE_MINUTES):
            # The provider made (and billed) the video but we could never fetch it.
            self._finish(
                Status.FAILED,
                error_code="result_unavailable",
                error_message="The provider finished the job, but its result could not be "
                "downloaded before the deadline. It was billed; the gateway dashboard may "
                "still offer the file.",
                only_from=[Status.FETCHING],
                keep_billing=True,
            )
            return
        try:
            gateway.download(self.result_url, target)
        except GatewayError as exc:
            if exc.code != "result_url_expired":
                raise
            # Signed result URLs expire: ask the provider for a fresh one, then retry.
            job = gateway.get_job(self.provider_job_id)
            self._count_request()
            if not job.result_url or job.result_url == self.result_url:
                raise GatewayError(
                    "The result link expired and no new one was given.",
                    code="result_url_expired",
                    retryable=True,
                ) from exc
            Run.objects.filter(pk=self.pk).update(result_url=job.result_url)
            gateway.download(job.result_url, target)
        self._count_request()
        poster = target.with_suffix(".jpg")
        facts = video.probe(target)
        video.save_poster(target, poster)
        Run.objects.filter(pk=self.pk, status=Status.FETCHING).update(
            status=Status.COMPLETED,
            finished_at=timezone.now(),
            notice="",
            result=f"results/{target.name}",
            poster=f"results/{poster.name}",
            result_width=facts.width,
            result_height=facts.height,
            result_fps=facts.fps,
        )
        self.refresh_from_db()

    def _cancel_at_provider(self, gateway: Gateway) -> None:
        from playground.gateway import GatewayError

        try:
            gateway.cancel(self.provider_job_id)
        except GatewayError as exc:
            if exc.status == 404:  # the provider no longer knows the job: nothing runs
                self._finish(Status.CANCELLED, only_from=[Status.QUEUED, Status.PROCESSING])
                return
            if exc.status != 409:  # 409: it finished first; the poll will pick that up
                raise
            Run.objects.filter(pk=self.pk).update(
                cancel_requested=False, next_poll_at=timezone.now()
            )
            return
        self._count_request()
        self._finish(Status.CANCELLED, only_from=[Status.QUEUED, Status.PROCESSING])

    def _give_up(self, gateway: Gateway) -> None:
        from playground.gateway import GatewayError

        try:
            gateway.cancel(self.provider_job_id)
            self._count_request()
        except GatewayError as exc:
            log.warning("run %s: cancel after deadline failed: %s", self.code, exc)
        self._finish(
            Status.TIMED_OUT,
            error_code="timed_out",
            error_message=f"The provider did not finish within {settings.RUN_DEADLINE_MINUTES} "
            "minutes, so the job was cancelled.",
            only_from=[Status.QUEUED, Status.PROCESSING],
        )

    def _finish(
        self,
        status: str,
        *,
        error_code: str = "",
        error_message: str = "",
        only_from: list[str] | None = None,
        keep_billing: bool = False,
        **extra: object,
    ) -> None:
        """End the run. Cost: none is billed for a job that produced nothing."""
        if not keep_billing:
            extra.update(billed_cost_micros=0, billed_seconds=0)
        Run.objects.filter(pk=self.pk, status__in=only_from or ACTIVE).update(
            status=status,
            error_code=error_code[:64],
            error_message=error_message,
            finished_at=timezone.now(),
            next_poll_at=None,
            notice="",
            **extra,
        )
        self.refresh_from_db()

    def _count_request(self) -> None:
        Run.objects.filter(pk=self.pk).update(provider_requests=models.F("provider_requests") + 1)


def poll_interval(*, webhook: bool) -> timedelta:
    """How long until a job is polled again: the gateway's 3 s (plus PacedGateway's margin),
    or, when a webhook will say it is done, a slower fallback."""
    if webhook:
        return timedelta(seconds=settings.WEBHOOK_FALLBACK_POLL_SECONDS)
    return timedelta(seconds=settings.POLL_INTERVAL_SECONDS + 0.3)


def webhook_url_for(run: Run) -> str:
    from playground.runs.references import public_base_url, webhooks_enabled

    if not webhooks_enabled():
        return ""
    return public_base_url() + reverse("webhook")


class TrackerLease(models.Model):
    """At most one tracker loop runs at a time; it holds this lease and renews it."""

    name = models.CharField(max_length=32, primary_key=True)
    holder = models.CharField(max_length=64, blank=True)
    expires_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.name} held by {self.holder or 'nobody'} until {self.expires_at}"

"""Runs. Every status change is a method here, guarded by a conditional UPDATE so two
processes never both act on one run (and never pay twice).

The work between the changes (HTTP to the provider, files, PyAV) is in runs/steps.py."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.db import connection, models, transaction
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import Coalesce, Greatest
from django.urls import reverse
from django.utils import timezone

from playground import kling
from playground.gateway import Job
from playground.lib import media, video
from playground.lib.thumbnails import remove_thumbnail
from playground.runs.models.references import Reference
from playground.runs.money import cost_of_seconds

log = logging.getLogger(__name__)


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


class CostSource(models.TextChoices):
    PROVIDER = "provider", "billed by the provider"
    COMPUTED = "computed", "computed from the output's duration"


STATUS_KEY_SALT = "run-status"
REMIXES_SHOWN = 20  # on a run's page; the rest are in History


@dataclass(frozen=True)
class Remixes:
    shown: list[Run]
    more: bool

    def __bool__(self) -> bool:
        return bool(self.shown)


class RunQuerySet(models.QuerySet["Run"]):
    def for_user(self, user: User) -> RunQuerySet:
        return self.filter(user=user)

    def counted_here(self) -> RunQuerySet:
        """The runs whose money counts on this instance now: real ones on the live gateway,
        simulated ones on the simulator (so budgets can be tried there, and a simulated
        "cost" never eats a real budget)."""
        return self.filter(simulated=settings.SIMULATOR_ENABLED)

    def visible(self) -> RunQuerySet:
        """What the owner sees: every run not deleted."""
        return self.filter(deleted_at=None)

    def in_flight(self) -> RunQuerySet:
        return self.filter(status__in=ACTIVE)

    def this_month(self) -> RunQuerySet:
        # From midnight on the 1st where the instance is (TIME_ZONE), as the spend chart's days.
        start = timezone.localtime().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return self.filter(created_at__gte=start)

    def committed_micros(self) -> int:
        """Money spent or promised: what was billed, else (a live run, or one whose billing
        is unknown) the estimate."""
        total = self.aggregate(total=Sum(Coalesce("billed_cost_micros", "estimated_cost_micros")))[
            "total"
        ]
        return total or 0

    def billed_micros(self) -> int:
        return self.aggregate(total=Sum("billed_cost_micros"))["total"] or 0

    def totals(self) -> dict[str, int]:
        """The history's figures in one pass, read from run_totals_idx alone: real money
        billed, what the simulator would have billed (never added together), runs in flight."""
        totals = self.aggregate(
            billed=Sum("billed_cost_micros", filter=Q(simulated=False)),
            simulated=Sum("billed_cost_micros", filter=Q(simulated=True)),
            in_flight=Count("pk", filter=Q(status__in=ACTIVE)),
        )
        return {name: value or 0 for name, value in totals.items()}

    def shareable(self) -> RunQuerySet:
        """Runs a share link may show: completed, with their result still on file."""
        return self.visible().filter(status=Status.COMPLETED).exclude(result="")

    def recent_prompts(self, limit: int = 8) -> list[str]:
        """The distinct prompts of these runs, the most recently used first (one query)."""
        return list(
            self.exclude(prompt="")
            .values("prompt")
            .annotate(last_used=Max("created_at"))
            .order_by("-last_used")
            .values_list("prompt", flat=True)[:limit]
        )


class Run(models.Model):
    code = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="runs"
    )
    # RESTRICT: a reference's file must outlive every run that points at it (deleting the
    # user still removes both together). Only a deleted run has none (see `discard`).
    reference = models.ForeignKey(
        Reference, on_delete=models.RESTRICT, related_name="runs", null=True, blank=True
    )
    # From a hidden form field: a double-click or resubmit finds the run it already made.
    idempotency_key = models.UUIDField()
    # The images the prompt cites, in order (@Image1 is position 1).
    images: models.ManyToManyField[Reference, RunImage] = models.ManyToManyField(
        Reference, through="RunImage", related_name="image_runs", blank=True
    )
    # "Remix": the run this one was started from.
    parent = models.ForeignKey(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="remixes"
    )
    batch = models.ForeignKey(
        "runs.Batch", on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    # The owner's own marks, private to them.
    starred = models.BooleanField(default=False)
    note = models.CharField(max_length=500, blank=True)

    prompt = models.TextField(max_length=kling.PROMPT_MAX_CHARS)
    duration = models.PositiveSmallIntegerField(default=kling.DEFAULT_DURATION)
    aspect_ratio = models.CharField(max_length=8, choices=kling.ASPECT_RATIOS, default="auto")
    keep_audio = models.BooleanField(default=False)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    provider_job_id = models.CharField(max_length=128, blank=True, db_index=True)
    cancel_requested = models.BooleanField(default=False)
    error_code = models.CharField(max_length=64, blank=True)
    error_message = models.TextField(blank=True)
    # The last transient fault, shown while we keep trying ("the gateway is busy…").
    notice = models.CharField(max_length=500, blank=True)

    # Money, in micro-dollars. The estimate is our price × the duration asked for; billed is
    # the provider's own figure when it gives one, else computed from the output's duration
    # (cost_source says which). None while unknown.
    estimated_cost_micros = models.BigIntegerField(default=0)
    billed_cost_micros = models.BigIntegerField(null=True, blank=True)
    billed_seconds = models.DecimalField(max_digits=8, decimal_places=3, null=True, blank=True)
    cost_source = models.CharField(max_length=16, choices=CostSource.choices, blank=True)
    # A submit that may have reached the provider was then refused: a job may exist, and
    # whether it was billed is unknown (the gateway's dashboard has the final word).
    billing_unknown = models.BooleanField(default=False)
    # Made by the built-in simulator: nothing is billed; costs are what it would bill.
    simulated = models.BooleanField(default=False)

    result_url = models.TextField(blank=True)
    result = models.FileField(max_length=255, blank=True)
    result_bytes = models.PositiveBigIntegerField(default=0)  # for the quota, as above
    poster = models.FileField(max_length=255, blank=True)
    result_width = models.PositiveIntegerField(null=True, blank=True)
    result_height = models.PositiveIntegerField(null=True, blank=True)
    result_fps = models.FloatField(null=True, blank=True)

    # The tracker's clock: when this run next needs attention. Claiming a run pushes it one
    # poll interval ahead, so the gateway's poll rule is kept here, for every worker at once.
    next_poll_at = models.DateTimeField(null=True, blank=True)
    # Which tracker is working this run, and until when: one worker at a time, and a dead
    # worker's runs come back on their own when its claim lapses (see runs/tracker.py).
    claimed_by = models.CharField(max_length=120, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    # When the job was last polled: the claim's time, or the poll's answer when it came
    # late. What a second poll in one step waits out (see tracker.PacedGateway).
    last_polled_at = models.DateTimeField(null=True, blank=True)
    provider_requests = models.PositiveIntegerField(default=0)
    # Submitted with a webhook_url: the webhook completes the run, polling is the fallback.
    webhook_expected = models.BooleanField(default=False)

    created_at = models.DateTimeField(default=timezone.now)
    # Deleted by its owner: gone from every page, its files and prompt removed, but its
    # money stays counted (deleting a run must not give its cost back to a budget).
    deleted_at = models.DateTimeField(null=True, blank=True)
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
            # A user's live runs, for the in-flight read every open tab makes every 10 s (not
            # a partial index: SQLite can't match one to a status list given as parameters).
            models.Index(fields=["user", "status"], name="run_live_idx"),
            # The history's pages and their count (visible runs, newest first): with 10,000
            # runs, counting through run_history_idx read every row for its deleted_at.
            models.Index(
                fields=["user", "-created_at"],
                name="run_visible_idx",
                condition=Q(deleted_at=None),
            ),
            # Covers RunQuerySet.totals, so the history's totals never read the table.
            models.Index(
                fields=["user", "simulated", "status", "billed_cost_micros"],
                name="run_totals_idx",
            ),
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
    def visible_remixes(self) -> Remixes:
        """The runs remixed from this one that their owner still keeps, the first
        REMIXES_SHOWN of them (one more is read, to tell whether there are more)."""
        kept = list(
            self.remixes.filter(deleted_at=None).order_by("created_at")[: REMIXES_SHOWN + 1]
        )
        return Remixes(shown=kept[:REMIXES_SHOWN], more=len(kept) > REMIXES_SHOWN)

    @property
    def image_references(self) -> list[Reference]:
        """The images the prompt cites, @Image1 first (from a prefetch, where there is one)."""
        images = getattr(self, "_prefetched_objects_cache", {}).get("run_images")
        if images is None:
            images = self.run_images.select_related("reference")
        return [image.reference for image in images]

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
    def billing_difference_micros(self) -> int:
        return (self.billed_cost_micros or 0) - self.estimated_cost_micros

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
        """A capability for this run's live status poll, minted only into the owner's page.

        It expires (STATUS_KEY_MAX_AGE_SECONDS) and travels in a header, never in a URL
        that access logs keep. It opens the live card only; see runs/poll.py.
        """
        return signing.TimestampSigner(salt=STATUS_KEY_SALT).sign(str(self.code))

    @staticmethod
    def code_for_status_key(key: str) -> str | None:
        """The run code a status key was minted for, or None if forged or expired."""
        try:
            return signing.TimestampSigner(salt=STATUS_KEY_SALT).unsign(
                key, max_age=settings.STATUS_KEY_MAX_AGE_SECONDS
            )
        except signing.BadSignature:
            return None

    # --- The user's actions -----------------------------------------------------------------

    def request_cancel(self) -> bool:
        """Cancel now if nothing was sent yet; else ask the tracker to cancel at the provider."""
        now = timezone.now()
        if Run.objects.filter(pk=self.pk, status=Status.PENDING).update(
            status=Status.CANCELLED,
            finished_at=now,
            next_poll_at=None,
            billed_cost_micros=0,
            billed_seconds=0,
        ):
            self.refresh_from_db()
            return True
        changed = Run.objects.filter(
            pk=self.pk, status__in=CANCELLABLE, cancel_requested=False
        ).update(cancel_requested=True, next_poll_at=now)
        self.refresh_from_db()
        return bool(changed)

    def discard(self) -> bool:
        """Delete a finished run for its owner: files, prompt and links go; the row stays,
        with its status and costs, so budgets and totals still count what it cost."""
        if not Run.objects.filter(pk=self.pk, status__in=FINAL, deleted_at=None).update(
            deleted_at=timezone.now(),
            prompt="",
            error_message="",
            notice="",
            result_url="",
            result="",
            result_bytes=0,
            poster="",
            reference=None,
        ):
            return False
        now = timezone.now()
        self.share_links.filter(revoked_at=None).update(revoked_at=now)
        # A batch link with nothing left to show, and nothing still to come, is closed too
        # rather than listed as live.
        if self.batch is not None and self.batch.has_nothing_to_share():
            self.batch.share_links.filter(revoked_at=None).update(revoked_at=now)
        # Its images go with its prompt, so they can be deleted from the library too.
        RunImage.objects.filter(run=self).delete()
        for name in (self.result.name, self.poster.name):
            media.delete(name)
        remove_thumbnail(self.poster.name)
        self.refresh_from_db()
        return True

    def set_starred(self, starred: bool) -> None:
        self.starred = starred
        self.save(update_fields=["starred"])

    def set_note(self, note: str) -> None:
        self.note = note
        self.save(update_fields=["note"])

    # --- The tracker's transitions ------------------------------------------------------------
    #
    # Each is one conditional UPDATE from the state it expects, so a repeat after a crash,
    # or a second process racing this one, changes nothing. The steps that call them (and do
    # the HTTP, file and video work) are in runs/steps.py.

    @classmethod
    def claim_due(cls, limit: int, holder: str, exclude: Collection[int] = ()) -> list[Run]:
        """Claim up to `limit` runs whose time has come for tracker `holder`.

        Claims are disjoint: on PostgreSQL the due rows are picked `FOR UPDATE SKIP LOCKED`,
        so trackers racing for work each get other runs; everywhere, the UPDATE repeats the
        conditions, so a run another tracker took meanwhile is not taken again. A claim
        lasts TRACKER_LEASE_SECONDS (renewed while its step runs) and also pushes
        `next_poll_at` one poll interval ahead and counts the poll about to be made, so the
        next poll of a job, by whichever worker, comes no sooner, and a poll that finds
        nothing new writes nothing more than its claim and its release.
        """
        now = timezone.now()
        due = Q(status__in=ACTIVE, next_poll_at__lte=now) & (
            Q(claimed_until__isnull=True) | Q(claimed_until__lte=now)
        )
        with transaction.atomic():
            candidates = cls.objects.filter(due).exclude(pk__in=exclude).order_by("next_poll_at")
            if connection.features.has_select_for_update_skip_locked:
                candidates = candidates.select_for_update(skip_locked=True)
            ids = list(candidates.values_list("pk", flat=True)[:limit])
            if not ids:
                return []
            claimed_until = now + timedelta(seconds=settings.TRACKER_LEASE_SECONDS)
            polling = Q(status__in=[Status.QUEUED, Status.PROCESSING], cancel_requested=False)
            cls.objects.filter(due, pk__in=ids).update(
                claimed_by=holder,
                claimed_until=claimed_until,
                next_poll_at=models.Case(
                    models.When(
                        polling & Q(webhook_expected=True),
                        then=models.Value(now + poll_interval(webhook=True)),
                    ),
                    default=models.Value(now + poll_interval(webhook=False)),
                    output_field=models.DateTimeField(),
                ),
                provider_requests=models.Case(
                    models.When(polling, then=models.F("provider_requests") + 1),
                    default=models.F("provider_requests"),
                    output_field=models.PositiveIntegerField(),
                ),
                last_polled_at=models.Case(
                    models.When(polling, then=models.Value(now)),
                    default=models.F("last_polled_at"),
                    output_field=models.DateTimeField(),
                ),
            )
        # The claim's exact end marks the rows this call took, whoever raced it.
        claimed = list(
            cls.objects.filter(
                pk__in=ids, claimed_by=holder, claimed_until=claimed_until
            ).select_related("reference")
        )
        # A submit sends the run's images: one query for all the runs about to be submitted
        # (and none when all are being polled, the common case).
        models.prefetch_related_objects(
            [run for run in claimed if run.status in (Status.PENDING, Status.SUBMITTING)],
            models.Prefetch("run_images", queryset=RunImage.objects.select_related("reference")),
        )
        return claimed

    @classmethod
    def renew_claims(cls, holder: str, pks: Collection[int]) -> int:
        """Extend `holder`'s claims on runs whose steps are still running."""
        until = timezone.now() + timedelta(seconds=settings.TRACKER_LEASE_SECONDS)
        return cls.objects.filter(pk__in=pks, claimed_by=holder).update(claimed_until=until)

    @classmethod
    def release_claims(cls, holder: str, pks: Collection[int] | None = None) -> int:
        """Hand `holder`'s runs back (all of them when `pks` is None), due as scheduled."""
        runs = cls.objects.filter(claimed_by=holder)
        if pks is not None:
            runs = runs.filter(pk__in=pks)
        return runs.update(claimed_by="", claimed_until=None)

    def record_poll_answered(self, at: datetime) -> None:
        """A poll of the job was answered at `at` later than its claim planned (or was one
        the schedule did not plan): the job's next poll, by any worker, comes a poll
        interval after it."""
        self.last_polled_at = at
        Run.objects.filter(pk=self.pk).update(
            last_polled_at=at,
            next_poll_at=Greatest(
                Coalesce("next_poll_at", models.Value(at)),
                models.Value(at + poll_interval(webhook=False)),
            ),
        )

    def start_submitting(self) -> bool:
        """PENDING → SUBMITTING, the claim before the paid call. False if another got it."""
        if not Run.objects.filter(pk=self.pk, status=Status.PENDING).update(
            status=Status.SUBMITTING
        ):
            return False
        self.status = Status.SUBMITTING
        return True

    def record_submitted(self, job: Job, *, webhook: bool) -> None:
        """SUBMITTING → QUEUED with the provider's job id (then its status, if further)."""
        now = timezone.now()
        updated = Run.objects.filter(pk=self.pk, status=Status.SUBMITTING).update(
            provider_job_id=job.id,
            status=Status.QUEUED,
            submitted_at=now,
            notice="",
            provider_requests=models.F("provider_requests") + 1,
            webhook_expected=webhook,
            next_poll_at=now + poll_interval(webhook=webhook),
        )
        self.refresh_from_db()
        if updated and job.status != "queued":
            self.apply_job(job)

    def apply_job(self, job: Job) -> None:
        """Take the provider's word for where the job is (from a poll or a webhook)."""
        now = timezone.now()
        active = [Status.QUEUED, Status.PROCESSING]
        runs = Run.objects.filter(pk=self.pk, provider_job_id=job.id)
        if job.status in ("queued", "processing"):
            # The common case, hundreds a second: nothing new, nothing written.
            if job.status == self.status and not self.notice:
                return
            # Forward only: a late "queued" (a webhook overtaken by a poll) can't move a
            # processing run back.
            since = [Status.QUEUED] if job.status == "queued" else active
            if runs.filter(status__in=since).update(status=job.status, notice=""):
                self.status, self.notice = job.status, ""
            return
        elif job.status == "completed":
            if (
                not runs.filter(status__in=active).update(
                    status=Status.FETCHING,
                    result_url=job.result_url,
                    provider_completed_at=now,
                    next_poll_at=now,
                    notice="",
                    **self._billing_for(job),
                )
                and job.cost_micros is not None
            ):
                # A poll saw the job complete first; the provider's own figure, arriving
                # later in a webhook, replaces the one we computed.
                runs.filter(
                    status__in=[Status.FETCHING, Status.COMPLETED], cost_source=CostSource.COMPUTED
                ).update(billed_cost_micros=job.cost_micros, cost_source=CostSource.PROVIDER)
        elif job.status == "failed":
            self.finish(
                Status.FAILED,
                error_code=job.error_code or "failed",
                error_message=job.error_message,
                only_from=active,
            )
        elif job.status == "cancelled":
            # Not from FETCHING: a job the provider completed (and billed) stays completed.
            self.finish(
                Status.CANCELLED,
                only_from=active,
                billing_unknown=self.status == Status.PROCESSING,
            )
        self.refresh_from_db()

    def _billing_for(self, job: Job) -> dict[str, object]:
        """What a completed job cost: the provider's figure when it gives one, else the
        output it made (its duration, or what we asked for) at the list price."""
        seconds = job.result_duration if job.result_duration else self.duration
        billing: dict[str, object] = {"billed_seconds": round(seconds, 3)}
        if job.cost_micros is not None:
            billing.update(billed_cost_micros=job.cost_micros, cost_source=CostSource.PROVIDER)
        else:
            billing.update(
                billed_cost_micros=cost_of_seconds(seconds), cost_source=CostSource.COMPUTED
            )
        return billing

    def record_result_url(self, url: str) -> None:
        Run.objects.filter(pk=self.pk).update(result_url=url)
        self.result_url = url

    def complete(
        self, *, result: str, result_bytes: int, poster: str, facts: video.VideoFacts | None
    ) -> None:
        """FETCHING → COMPLETED with the copied result (and its poster, when one was made)."""
        Run.objects.filter(pk=self.pk, status=Status.FETCHING).update(
            status=Status.COMPLETED,
            finished_at=timezone.now(),
            next_poll_at=None,
            notice="",
            result=result,
            result_bytes=result_bytes,
            poster=poster,
            result_width=facts.width if facts else None,
            result_height=facts.height if facts else None,
            result_fps=facts.fps if facts else None,
        )
        self.refresh_from_db()

    def wait_and_retry(self, notice: str, seconds: float) -> None:
        """Stay where we are, say why on the card, and come back after `seconds`."""
        Run.objects.filter(pk=self.pk, status=self.status).update(
            notice=notice[:500], next_poll_at=timezone.now() + timedelta(seconds=seconds)
        )

    def drop_cancel_request(self) -> None:
        """The provider says the job finished first: poll it as soon as the poll rule allows
        (the last poll may have been a moment ago) and take what it made."""
        now = timezone.now()
        soonest = self.last_polled_at + poll_interval(webhook=False) if self.last_polled_at else now
        Run.objects.filter(pk=self.pk).update(
            cancel_requested=False, next_poll_at=max(now, soonest)
        )
        self.refresh_from_db()

    def finish(
        self,
        status: str,
        *,
        error_code: str = "",
        error_message: str = "",
        only_from: Sequence[str] | None = None,
        keep_billing: bool = False,
        billing_unknown: bool = False,
    ) -> None:
        """End the run. Cost: none is billed for a job that produced nothing, unless the
        provider may have made one we can't see (then billing is unknown, not $0)."""
        extra: dict[str, object] = {}
        if billing_unknown:
            extra.update(billed_cost_micros=None, billed_seconds=None, billing_unknown=True)
        elif not keep_billing:
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

    def count_request(self) -> None:
        Run.objects.filter(pk=self.pk).update(provider_requests=models.F("provider_requests") + 1)


def poll_interval(*, webhook: bool) -> timedelta:
    """How long until a job is polled again: the gateway's 3 s (plus POLL_MARGIN_SECONDS),
    or, when a webhook will say it is done, a slower fallback."""
    if webhook:
        return timedelta(seconds=settings.WEBHOOK_FALLBACK_POLL_SECONDS)
    return timedelta(seconds=settings.POLL_INTERVAL_SECONDS + settings.POLL_MARGIN_SECONDS)


class RunImage(models.Model):
    """An image a run cites: position 1 is @Image1 in its prompt."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="run_images")
    # RESTRICT, like the video: an image must outlive the runs that cite it.
    reference = models.ForeignKey(Reference, on_delete=models.RESTRICT, related_name="+")
    position = models.PositiveSmallIntegerField()

    class Meta:
        ordering = ["position"]
        constraints = [
            models.UniqueConstraint(fields=["run", "position"], name="one_image_per_position"),
        ]

    def __str__(self) -> str:
        return f"@Image{self.position} of {self.run_id}"

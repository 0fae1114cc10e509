""" "Fix it": a conformed copy of a video the model would refuse as it is.

A reference kept with problems (too long, too big, too fast, another container; see
lib/video.reference_problems) gets a fix: the user picks a segment if it is too long, and
a django-q2 task on the previews cluster converts it with PyAV (lib/conform.py). The copy
becomes a new reference, checked like an upload; the original is kept.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import av
from django.contrib.auth.models import User
from django.db import transaction
from django_q.tasks import async_task

from playground import kling
from playground.lib import conform, media, video
from playground.runs.models import FixStatus, Reference, ReferenceFix
from playground.runs.previews import CLUSTER
from playground.runs.references import save_reference, storage_use

log = logging.getLogger(__name__)

# The segment a too-long clip is cut to: whole seconds within the model's 3–10.05 s.
SEGMENT_MIN_SECONDS = kling.REFERENCE_MIN_SECONDS
SEGMENT_MAX_SECONDS = float(math.floor(kling.REFERENCE_MAX_SECONDS))
# The range sliders move in tenths; this much float noise still counts as on the limit.
SLACK = 1e-6
# How often the task writes its progress: the page polls every second.
PROGRESS_EVERY_SECONDS = 0.25


class FixRefused(ValueError):
    """The fix can't be started as asked; the message says why."""


@dataclass(frozen=True)
class FixPlan:
    """What a fix of this reference will do, for the page and for start_fix."""

    needs_segment: bool
    target: conform.Target
    steps: list[str]


def plan_for(reference: Reference) -> FixPlan:
    target = conform.target_for(reference.width, reference.height, reference.fps)
    needs_segment = reference.duration > kling.REFERENCE_MAX_SECONDS
    steps = []
    if needs_segment:
        steps.append(
            f"Keep the {SEGMENT_MIN_SECONDS:g}–{SEGMENT_MAX_SECONDS:g} s segment you pick "
            f"of its {reference.duration:.1f} s."
        )
    if target.resolution != reference.resolution:
        steps.append(f"Scale it down from {reference.resolution} to {target.resolution}.")
    if target.fps:
        steps.append(f"Bring it from {reference.fps:g} fps to {target.fps} fps.")
    steps.append(
        "Save it as H.264 video in an MP4" + (", with AAC sound." if reference.has_audio else ".")
    )
    return FixPlan(needs_segment=needs_segment, target=target, steps=steps)


MAX_UNFINISHED_FIXES = 2


def start_fix(reference: Reference, start: float | None, end: float | None) -> ReferenceFix:
    """Queue the conversion of `reference` ([start, end) of it when it is too long).

    The same segment asked again (a double-click) finds the fix already under way or done.
    """
    if reference.is_usable:
        raise FixRefused(f"“{reference.name}” has nothing to fix: the model takes it as it is.")
    if plan_for(reference).needs_segment:
        start, end = _checked_segment(reference, start, end)
        share = (end - start) / reference.duration
    else:
        start, end, share = 0.0, None, 1.0  # the whole clip (bounded in run_fix)
    ReferenceFix.give_up_stale(reference.user)
    with transaction.atomic():
        # Parallel asks of one user queue here, so none gets past the count below with
        # another (on SQLite every write transaction begins IMMEDIATE: the same queue).
        User.objects.select_for_update().filter(pk=reference.user_id).first()
        existing = (
            ReferenceFix.objects.filter(source=reference, start=start, end=end)
            .exclude(status=FixStatus.FAILED)
            .exclude(status=FixStatus.DONE, result=None)  # its copy was deleted since: again
            .first()
        )
        if existing is not None:
            return existing
        unfinished = ReferenceFix.objects.filter(
            user=reference.user, status__in=[FixStatus.QUEUED, FixStatus.RUNNING]
        ).count()
        if unfinished >= MAX_UNFINISHED_FIXES:
            # One previews worker serves everybody: one user's burst must not hold it all.
            raise FixRefused(
                f"You already have {unfinished} conversions under way; wait for one to finish."
            )
        # The copy's size is not known before it is made; the source's share is a fair guess
        # (run_fix checks the real size again).
        if problem := storage_use(reference.user).refusal(
            reference.name, int(reference.size * share)
        ):
            raise FixRefused(problem)
        fix = ReferenceFix.objects.create(
            user=reference.user, source=reference, start=start, end=end
        )
        transaction.on_commit(
            lambda: async_task(
                "playground.runs.fixes.run_fix",
                fix.pk,
                task_name=f"fix {fix.code}",
                cluster=CLUSTER,
            )
        )
    return fix


def _checked_segment(
    reference: Reference, start: float | None, end: float | None
) -> tuple[float, float]:
    low, high = SEGMENT_MIN_SECONDS, SEGMENT_MAX_SECONDS
    if start is None or end is None:
        raise FixRefused(f"Pick the segment to keep: {low:g}–{high:g} s of the video.")
    start, end = round(start, 3), round(end, 3)
    if not 0 <= start < end <= reference.duration + SLACK:
        raise FixRefused(
            f"The segment {start:.1f}–{end:.1f} s is not within the video's "
            f"0–{reference.duration:.1f} s."
        )
    length = end - start
    if not low - SLACK <= length <= high + SLACK:
        raise FixRefused(
            f"The segment {start:.1f}–{end:.1f} s is {length:.1f} s long; pick {low:g}–{high:g} s."
        )
    return start, min(end, reference.duration)


def run_fix(fix_pk: int) -> str:
    """The task: convert, check the copy as an upload is checked, and add it to the library.

    Safe to run twice: the claim (a conditional UPDATE) lets one delivery do the work.
    """
    fix = ReferenceFix.objects.select_related("source", "user").filter(pk=fix_pk).first()
    if fix is None or not fix.claim():
        return "nothing to do"
    source = fix.source
    code = uuid.uuid4()
    folder = f"references/{code}"
    try:
        reference = _convert(fix, code, folder)
    except TakenOver:
        media.delete_folder(folder)
        return f"fix {fix.code} was finished by another worker"
    except (FixFailed, av.FFmpegError, video.UnreadableVideo, OSError) as exc:
        media.delete_folder(folder)
        message = str(exc) if isinstance(exc, FixFailed) else f"The conversion failed: {exc}."
        fix.fail(f"{message} “{source.name}” is kept as it was.")
        return f"fix {fix.code} failed"
    except BaseException:
        media.delete_folder(folder)
        log.exception("fix %s crashed", fix.code)
        fix.fail(f"The conversion failed unexpectedly. “{source.name}” is kept as it was.")
        raise
    return f"fix {fix.code} made {reference.code}"


class FixFailed(Exception):
    """The copy came out wrong or does not fit; the message is for the user."""


class TakenOver(Exception):
    """Another worker took the fix over (see ReferenceFix.claim) and finished it first."""


def _convert(fix: ReferenceFix, code: uuid.UUID, folder: str) -> Reference:
    source = fix.source
    with (
        media.local_copy(source.file.name) as original,
        media.scratch(".mp4") as copy,
        media.scratch(".jpg") as poster,
    ):
        facts = conform.conform(
            original,
            copy,
            start=fix.start,
            # The whole clip ends where its probed length says: a file holding more frames
            # than its header promised is not converted past it.
            end=fix.end if fix.end is not None else fix.source.duration + SLACK,
            progress=_Progress(fix),
        )
        if problems := video.reference_problems(facts):  # never expected: say it, don't send
            raise FixFailed(
                "The converted copy still breaks the limits: " + " ".join(map(str, problems))
            )
        name = copy_name(source, fix)
        if problem := storage_use(fix.user).refusal(name, facts.size):
            raise FixFailed(problem)
        video.save_poster(copy, poster)
        target = media.save(f"{folder}/original.mp4", copy)
        poster_name = media.save(f"{folder}/poster.jpg", poster)
    with transaction.atomic():
        reference = save_reference(
            fix.user, code, name, target, poster_name, facts, derived_from=source
        )
        if not fix.finish(reference):  # rolls the row back: the other worker's copy is kept
            raise TakenOver
    return reference


def copy_name(source: Reference, fix: ReferenceFix) -> str:
    """ "clip (3.0–10.0 s).mp4", or what else the fix changed: "clip (30 fps).mp4"."""
    plan = plan_for(source)
    changes = []
    if fix.end is not None:
        changes.append(f"{fix.start:.1f}–{fix.end:.1f} s")
    if plan.target.fps:
        changes.append(f"{plan.target.fps} fps")
    if plan.target.resolution != source.resolution:
        changes.append(plan.target.resolution)
    return f"{Path(source.name).stem} ({', '.join(changes) or 'H.264'}).mp4"


class _Progress:
    """Writes the fraction done to the fix's row, at most every PROGRESS_EVERY_SECONDS."""

    def __init__(self, fix: ReferenceFix) -> None:
        self.fix = fix
        self.last = 0.0

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_EVERY_SECONDS:
            self.last = now
            self.fix.record_progress(fraction)

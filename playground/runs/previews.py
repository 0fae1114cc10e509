"""H.264 preview copies of references browsers can't play (HEVC from phones, MPEG-4 Part 2).

The original goes to the provider untouched; only the page plays the preview. Made with
PyAV in a django-q2 task, since transcoding a 10 s 4K clip takes a while. The task goes to
a cluster of its own (settings.Q_CLUSTER's ALT_CLUSTERS), so transcodes never hold up the
tracker's worker.
"""

from __future__ import annotations

import logging
import posixpath

from django.db import transaction
from django_q.tasks import async_task

from playground.lib import media, video
from playground.lib.conform import transcode
from playground.runs.models import Reference

log = logging.getLogger(__name__)
PREVIEW_MAX_SIDE = 1280
CLUSTER = "previews"  # its queue, and Q_CLUSTER_NAME of the qcluster that works it


def schedule_preview(reference: Reference) -> None:
    if not reference.needs_preview:
        return
    transaction.on_commit(
        lambda: async_task(
            "playground.runs.previews.make_preview",
            reference.pk,
            task_name=f"preview {reference.code}",
            cluster=CLUSTER,
        )
    )


def make_preview(reference_pk: int) -> str:
    """The task: transcode to H.264/yuv420p MP4 (faststart), keep the sound as AAC."""
    reference = Reference.objects.filter(pk=reference_pk).first()
    if reference is None or reference.preview:
        return "nothing to do"
    width, height = video.fit_within(reference.width, reference.height, PREVIEW_MAX_SIDE)
    with media.local_copy(reference.file.name) as source, media.scratch(".mp4") as part:
        # Bounded by the length the header gave (checked at upload): a file holding more
        # than it says never makes the previews worker transcode hours of it.
        transcode(source, part, width=width, height=height, end=reference.duration + 1)
        preview = media.save(posixpath.dirname(reference.file.name) + "/preview.mp4", part)
        size = part.stat().st_size
    Reference.objects.filter(pk=reference.pk).update(preview=preview, preview_bytes=size)
    return f"preview made for {reference.code}"

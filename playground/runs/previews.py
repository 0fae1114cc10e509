"""H.264 preview copies of references browsers can't play (HEVC from phones, MPEG-4 Part 2).

The original goes to the provider untouched; only the page plays the preview. Made with
PyAV in a django-q2 task, since transcoding a 10 s 4K clip takes a while.
"""

from __future__ import annotations

import logging
from fractions import Fraction

import av
from django.db import transaction

from playground.runs.models import Reference, media_path

log = logging.getLogger(__name__)
PREVIEW_MAX_SIDE = 1280


def schedule_preview(reference: Reference) -> None:
    if not reference.needs_preview:
        return
    from django_q.tasks import async_task

    transaction.on_commit(
        lambda: async_task(
            "playground.runs.previews.make_preview",
            reference.pk,
            task_name=f"preview {reference.code}",
        )
    )


def make_preview(reference_pk: int) -> str:
    """The task: transcode to H.264/yuv420p MP4 (faststart), keep the sound as AAC."""
    reference = Reference.objects.filter(pk=reference_pk).first()
    if reference is None or reference.preview:
        return "nothing to do"
    source = media_path(reference.file.name)
    target = source.with_name("preview.mp4")
    part = source.with_name("preview.part.mp4")
    with (
        av.open(str(source)) as inp,
        av.open(str(part), "w", format="mp4", options={"movflags": "+faststart"}) as out,
    ):
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        scale = min(1.0, PREVIEW_MAX_SIDE / max(reference.width, reference.height))
        width = max(2, int(reference.width * scale) // 2 * 2)
        height = max(2, int(reference.height * scale) // 2 * 2)
        rate = Fraction(vin.average_rate or 30).limit_denominator(1001)
        vout = out.add_stream("libx264", rate=rate)
        vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
        vout.options = {"preset": "veryfast", "crf": "23"}
        ain = inp.streams.audio[0] if inp.streams.audio else None
        aout = None
        if ain is not None:
            aout = out.add_stream("aac", rate=48000)
            aout.layout = "stereo"
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=48000)
        streams = [vin] + ([ain] if ain is not None else [])
        index = 0
        samples = 0
        for packet in inp.demux(*streams):
            for frame in packet.decode():
                if isinstance(frame, av.VideoFrame):
                    picture = frame.reformat(width=width, height=height, format="yuv420p")
                    picture.pts = index
                    picture.time_base = 1 / rate
                    index += 1
                    out.mux(vout.encode(picture))
                elif aout is not None:
                    for chunk in resampler.resample(frame):
                        chunk.pts = samples
                        samples += chunk.samples
                        out.mux(aout.encode(chunk))
        out.mux(vout.encode(None))
        if aout is not None:
            out.mux(aout.encode(None))
    part.replace(target)
    Reference.objects.filter(pk=reference.pk).update(preview=str(target.relative_to(media_path())))
    return f"preview made for {reference.code}"

"""Re-encoding videos with PyAV: the "Fix it" conversion that makes a clip the model
refuses into one it takes, and the transcode loop it shares with the page's previews.

Everything comes out as H.264/yuv420p in an MP4 with its index first (+faststart), with
the sound, if any, as AAC. Frames are kept or dropped by their timestamps, never by
counting, so a variable frame rate (phones) keeps its timing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av

from playground import kling
from playground.lib import video

# Above the model's 60 fps, a clip is brought down to this: half of 60, a whole share of
# the usual 120 and 240 fps slow-motion rates, and at or above its 24 fps minimum.
CAPPED_FPS = 30
# Decoding stops this close before the end, so a frame exactly at `end` is left out.
EPSILON = 1e-6
# How far past the end (the segment's, else the header's length) packets are still read:
# streams interleave within a fraction of a second, so the last frames before the end are
# in by then.
PAST_END_SECONDS = 1.0

Progress = Callable[[float], None]


@dataclass(frozen=True)
class Target:
    """What a conformed copy will be: its size and frame rate (None: the source's)."""

    width: int
    height: int
    fps: int | None

    @property
    def resolution(self) -> str:
        return f"{self.width}×{self.height}"


def target_for(width: int, height: int, fps: float) -> Target:
    """Both sides within the model's 2160 px (aspect kept, even sides), and 30 fps for a
    clip faster than the model's 60."""
    width, height = video.fit_within(width, height, kling.REFERENCE_MAX_SIDE)
    return Target(width, height, CAPPED_FPS if fps > kling.REFERENCE_MAX_FPS else None)


def conform(
    source: Path, target: Path, *, start: float, end: float | None, progress: Progress
) -> video.VideoFacts:
    """Write the [start, end) segment of `source` to `target` as a copy the model takes."""
    facts = video.probe(source, thorough=False)
    plan = target_for(facts.width, facts.height, facts.fps)
    transcode(
        source,
        target,
        width=plan.width,
        height=plan.height,
        fps=plan.fps,
        start=start,
        end=end,
        progress=progress,
    )
    return video.probe(target)


def transcode(
    source: Path,
    target: Path,
    *,
    width: int,
    height: int,
    fps: int | None = None,
    start: float = 0.0,
    end: float | None = None,
    progress: Progress | None = None,
) -> None:
    """Re-encode `source` (its [start, end) segment) to H.264/AAC at width × height.

    `fps` caps the frame rate: each output slot of 1/fps s takes the frame nearest to it
    and the frames between are dropped. Without it the source's rate is kept. A source a
    player turns (a phone's portrait clip) is turned in its pixels: width × height is the
    turned picture's size, as `video.probe` gives it.
    """
    with av.open(str(source)) as inp, video.open_mp4(target) as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"  # decode on every core; the encoder threads on its own
        upright = video.Upright(vin)
        source_rate = Fraction(vin.average_rate or vin.guessed_rate or 30)
        rate = Fraction(fps) if fps else source_rate.limit_denominator(1001)
        vout = video.add_h264(out, width, height, rate)
        ain = inp.streams.audio[0] if inp.streams.audio else None
        aout = None
        if ain is not None:
            aout, resampler = video.add_aac(out)
        stop = end if end is not None else video.stream_seconds(inp, vin)
        length = max(stop - start, EPSILON)
        # Times below are from the video's first frame, as a player shows them: a stream
        # may start anywhere (MPEG-TS at 1.4 s, a camcorder's at hours in).
        offset = float(vin.start_time * vin.time_base) if vin.start_time and vin.time_base else 0
        if start > 0 and vin.time_base and video.seeks_by_index(inp):
            # To the keyframe at or before `start`; the frames before it are decoded only
            # to build the first kept one, then dropped.
            inp.seek(int((start + offset) / vin.time_base), stream=vin, backward=True)
        slots = _Slots(rate, source_rate)
        samples = 0
        video_done, audio_done = False, ain is None
        # Past this, nothing is read: a stream whose end is never seen (audio shorter than
        # the segment) or a file holding far more than its header says must not keep the
        # worker decoding to the end of it.
        give_up_at = stop + PAST_END_SECONDS
        for packet in inp.demux(*[s for s in (vin, ain) if s is not None]):
            # Judged on the video alone: sound may be packed ahead of the picture.
            if packet.stream is vin and _seconds(packet) - offset > give_up_at:
                break
            for frame in packet.decode():
                if not isinstance(frame, av.VideoFrame | av.AudioFrame):
                    continue
                time = frame.time - offset if frame.time is not None else start
                if time < start - EPSILON:
                    continue
                is_video = isinstance(frame, av.VideoFrame)
                if end is not None and time >= end - EPSILON:
                    video_done, audio_done = video_done or is_video, audio_done or not is_video
                    continue
                if isinstance(frame, av.VideoFrame):
                    pts = slots.place(time - start)
                    if pts is None:
                        continue
                    picture = upright(frame).reformat(width=width, height=height, format="yuv420p")
                    picture.pts, picture.time_base = pts, 1 / rate
                    out.mux(vout.encode(picture))
                    if progress is not None:
                        progress(min(1.0, (time - start) / length))
                elif aout is not None:
                    for chunk in resampler.resample(frame):
                        chunk.pts = samples
                        samples += chunk.samples
                        out.mux(aout.encode(chunk))
            if video_done and audio_done:
                break
        out.mux(vout.encode(None))
        if aout is not None:
            out.mux(aout.encode(None))
    if progress is not None:
        progress(1.0)


def _seconds(packet: av.Packet) -> float:
    """A packet's time (0 when it has none: it is not judged by it)."""
    if packet.pts is None or packet.time_base is None:
        return 0.0
    return float(packet.pts * packet.time_base)


class _Slots:
    """Output frame numbers for source frames, by their time: a frame takes the next slot
    once it is within half a source frame of it, so a capped rate keeps the frames nearest
    to its slots, and an uncapped one keeps every frame (with its gaps, if it has any)."""

    def __init__(self, rate: Fraction, source_rate: Fraction) -> None:
        self.rate = rate
        self.tolerance = min(Fraction(1, 2), rate / source_rate / 2) if source_rate else 0
        self.next = 0

    def place(self, seconds: float) -> int | None:
        position = seconds * self.rate
        if position < self.next - self.tolerance:
            return None
        pts = self.next if self.next == 0 else max(self.next, math.floor(position + 0.5))
        self.next = pts + 1
        return pts

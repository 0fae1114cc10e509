"""Everything we need to know about a video file, read with PyAV (no ffmpeg binary)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
from av.container import OutputContainer
from PIL import Image

from playground import kling
from playground.lib.media import sizes_apart

# PyAV names the demuxer for the whole ISO family like this; .mp4 and .mov both use it.
MP4_FAMILY = "mov,mp4,m4a,3gp,3g2,mj2"
# Browsers decode these in <video>; anything else gets an H.264 preview copy.
BROWSER_CODECS = {"h264", "vp8", "vp9", "av1"}
# Containers "Fix it" re-encodes to MP4: Matroska/WebM (screen recorders, Android), AVI,
# and MPEG transport streams (camcorders' .mts/.m2ts, broadcast recordings).
FIXABLE_FORMATS = {"matroska,webm", "avi", "mpegts"}


class UnreadableVideo(ValueError):
    """The file is not a video PyAV can read (text, image, audio only, truncated...)."""


@dataclass(frozen=True)
class VideoFacts:
    format_name: str
    codec: str
    width: int
    height: int
    fps: float
    duration: float
    size: int
    has_audio: bool
    # Degrees a player turns the picture counterclockwise (the display matrix phones write
    # instead of turning the pixels); width and height above are the turned picture's.
    rotation: int = 0

    @property
    def resolution(self) -> str:
        return f"{self.width}×{self.height}"

    @property
    def is_mp4_family(self) -> bool:
        return self.format_name == MP4_FAMILY

    @property
    def browser_playable(self) -> bool:
        return self.codec in BROWSER_CODECS


def describe_format(format_name: str) -> str:
    """A human name for a demuxer name, for messages."""
    names = {
        MP4_FAMILY: "MP4/MOV",
        "matroska,webm": "Matroska/WebM (.mkv/.webm)",
        "mpegts": "MPEG-TS (.mts/.m2ts/.ts)",
    }
    return names.get(format_name, format_name)


def probe(path: str | Path, *, thorough: bool = True) -> VideoFacts:
    """Read the facts of a video file; raise UnreadableVideo when it is not one.

    `thorough` also walks every packet and decodes a frame, to catch truncated or corrupt
    uploads; files we made ourselves or just fetched from the provider skip it.
    """
    path = Path(path)
    size = path.stat().st_size
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as exc:
        raise UnreadableVideo("it is not a video file we can read") from exc
    with container:
        format_name = container.format.name
        if not container.streams.video:
            raise UnreadableVideo("it has no video stream")
        stream = container.streams.video[0]
        if format_name in {"image2", "png_pipe", "jpeg_pipe", "webp_pipe", "gif"} or (
            stream.frames in (0, 1) and not container.duration
        ):
            raise UnreadableVideo("it is a still image, not a video")
        rate = stream.average_rate or stream.guessed_rate or Fraction(0)
        duration = stream_seconds(container, stream)
        stored = (stream.codec_context.width, stream.codec_context.height)
        fps, has_audio = round(float(rate), 3), bool(container.streams.audio)
        codec = stream.codec_context.name
        if thorough:
            _check_complete(container, stream, duration)
    rotation = display_rotation(path)
    width, height = displayed(*stored, rotation)
    return VideoFacts(
        format_name=format_name,
        codec=codec,
        width=width,
        height=height,
        fps=fps,
        duration=round(duration, 3),
        size=size,
        has_audio=has_audio,
        rotation=rotation,
    )


def display_rotation(path: str | Path) -> int:
    """0, 90, 180 or 270: how far a player turns the picture counterclockwise. Phones keep
    the sensor's landscape pixels and store the turn in a display matrix, which FFmpeg
    hands to each decoded frame; so the first frame tells (0 when none decodes)."""
    try:
        with av.open(str(path), metadata_errors="ignore") as container:
            frame = next(container.decode(video=0), None)
    except (av.FFmpegError, UnicodeDecodeError, ValueError, StopIteration):
        return 0
    return quarter_turn(frame) if frame is not None else 0


def quarter_turn(frame: av.VideoFrame) -> int:
    """The frame's display rotation as 0, 90, 180 or 270 (FFmpeg gives -180…180)."""
    return round(frame.rotation / 90) % 4 * 90


def displayed(width: int, height: int, rotation: int) -> tuple[int, int]:
    """The size of a width × height picture once a player has turned it."""
    return (height, width) if rotation in (90, 270) else (width, height)


def upright_filters(rotation: int) -> list[tuple[str, str]]:
    """The libavfilter steps that turn the pixels themselves as a player would, so a copy
    needs no display matrix (not every player, nor every model, honours one)."""
    return {
        90: [("transpose", "cclock")],
        180: [("hflip", ""), ("vflip", "")],
        270: [("transpose", "clock")],
    }.get(rotation, [])


def filter_chain(stream: av.VideoStream, steps: list[tuple[str, str]]) -> av.filter.Graph:
    """A configured libavfilter graph taking the stream's frames through `steps` in turn."""
    graph = av.filter.Graph()
    node = graph.add_buffer(template=stream)
    for name, args in steps:
        step = graph.add(name, args)
        node.link_to(step)
        node = step
    node.link_to(graph.add("buffersink"))
    graph.configure()
    return graph


def filtered(graph: av.filter.Graph, frame: av.VideoFrame) -> av.VideoFrame:
    """One frame through a chain made by `filter_chain`."""
    graph.push(frame)
    return cast(av.VideoFrame, graph.pull())  # a video graph gives video frames


class Upright:
    """Decoded frames of a stream, turned upright as a player shows them. The turn is read
    off the first frame (a frame passes as it is when the stream has none)."""

    def __init__(self, stream: av.VideoStream) -> None:
        self.stream = stream
        self.graph: av.filter.Graph | None = None
        self.seen_first = False

    def __call__(self, frame: av.VideoFrame) -> av.VideoFrame:
        if not self.seen_first:
            self.seen_first = True
            if steps := upright_filters(quarter_turn(frame)):
                self.graph = filter_chain(self.stream, steps)
        return filtered(self.graph, frame) if self.graph is not None else frame


def stream_seconds(container: av.container.InputContainer, stream: av.VideoStream) -> float:
    """How long a video stream lasts, from its header (the container's when it has none)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return 0.0


def _check_complete(
    container: av.container.InputContainer, stream: av.VideoStream, duration: float
) -> None:
    """Demux every video packet (no decoding) and decode the first frame.

    A truncated upload still has its header, so the header alone looks fine; walking the
    packets finds the cut, and decoding one frame finds garbage in place of pictures.
    """
    last_end = 0.0
    decoded = False
    try:
        for packet in container.demux(stream):
            if packet.pts is not None and packet.time_base:
                end = float((packet.pts + (packet.duration or 0)) * packet.time_base)
                last_end = max(last_end, end)
            if not decoded and packet.size:
                decoded = bool(packet.decode())
    except av.FFmpegError as exc:
        raise UnreadableVideo("it is damaged: its video data cannot be read") from exc
    if not decoded:
        raise UnreadableVideo("it is damaged: no picture could be decoded")
    start = (
        float(stream.start_time * stream.time_base)
        if stream.start_time and stream.time_base
        else 0.0
    )
    if duration and (last_end - start) < duration * 0.9 - 0.1:
        raise UnreadableVideo(
            f"it looks truncated: it claims {duration:.2f} s but holds only "
            f"{max(last_end - start, 0):.2f} s of video"
        )
    if duration and (last_end - start) > duration * 1.5 + 2:
        # A header that understates the video (edited, or forged to pass the length
        # limit) would have every conversion of it bounded by a length it does not have.
        raise UnreadableVideo(
            f"its header says {duration:.2f} s but it holds {last_end - start:.2f} s of "
            "video; re-export it"
        )


@dataclass(frozen=True)
class Problem:
    """One way a file breaks the model's limits. A fixable one a conversion can cure
    (playground/lib/conform.py); the others no conversion can honestly fix."""

    message: str
    fixable: bool = False

    def __str__(self) -> str:
        return self.message


def reference_problems(facts: VideoFacts) -> list[Problem]:
    """Every way this file breaks the model's limits, each naming the limit and the value."""
    problems = []
    if not facts.is_mp4_family:
        problems.append(
            Problem(
                f"The file is {describe_format(facts.format_name)}; "
                "the model takes MP4 or MOV only.",
                # Only the containers phones and screen recorders write: any other format
                # FFmpeg can read would be kept and transcoded for whoever uploads it.
                fixable=facts.format_name in FIXABLE_FORMATS,
            )
        )
    if facts.size > kling.REFERENCE_MAX_BYTES:
        problems.append(Problem(size_problem(facts.size)))
    low, high = kling.REFERENCE_MIN_SECONDS, kling.REFERENCE_MAX_SECONDS
    if not low <= facts.duration <= high:
        message = f"The video is {facts.duration:.2f} s long; it must be {low:g}–{high:g} s."
        # A segment of it can be cut (nothing lengthens), from a clip of a sane length.
        trimmable = high < facts.duration <= kling.FIXABLE_MAX_SECONDS
        if facts.duration > kling.FIXABLE_MAX_SECONDS:
            message += (
                f" Clips up to {kling.FIXABLE_MAX_SECONDS / 60:g} minutes can be trimmed "
                "here; cut a shorter piece of this one first."
            )
        problems.append(Problem(message, fixable=trimmable))
    problems.extend(_side_problems(facts))
    low_fps, high_fps = kling.REFERENCE_MIN_FPS, kling.REFERENCE_MAX_FPS
    if not low_fps <= facts.fps <= high_fps:
        problems.append(
            Problem(
                f"The video runs at {facts.fps:g} fps; it must be {low_fps:g}–{high_fps:g} fps.",
                fixable=facts.fps > high_fps,  # frames can be dropped, not invented
            )
        )
    return problems


def _side_problems(facts: VideoFacts) -> list[Problem]:
    low, high = kling.REFERENCE_MIN_SIDE, kling.REFERENCE_MAX_SIDE
    if min(facts.width, facts.height) < low:
        return [
            Problem(
                f"The video is {facts.resolution}; the model needs at least {low} px on each "
                "side, and upscaling would only hide the problem."
            )
        ]
    if max(facts.width, facts.height) <= high:
        return []
    scaled = fit_within(facts.width, facts.height, high)
    if min(scaled) < low:  # too wide for its height: scaling down makes it too small
        return [
            Problem(
                f"The video is {facts.resolution}; each side must be {low}–{high} px, and "
                f"scaled down to fit it would be {scaled[0]}×{scaled[1]}, under {low} px."
            )
        ]
    return [Problem(f"The video is {facts.resolution}; each side must be at most {high} px.", True)]


def size_problem(size: int) -> str:
    size_text, limit_text = sizes_apart(size, kling.REFERENCE_MAX_BYTES)
    return f"The file is {size_text}; the limit is {limit_text}."


def save_poster(video: str | Path, dest: str | Path, *, at: float | None = None) -> None:
    """Write a JPEG poster: the keyframe at or before a third of the way in (1 s at most).

    Taking the keyframe itself, not decoding on to the exact time, keeps this to one frame
    of decoding; it runs for every finished run, on the tracker's time.
    """
    with av.open(str(video)) as container:
        stream = container.streams.video[0]
        duration = stream_seconds(container, stream)
        target = min(duration / 3, 1.0) if at is None else at
        if target > 0 and stream.time_base and seeks_by_index(container):
            container.seek(int(target / stream.time_base), stream=stream, backward=True)
        frame = next(container.decode(stream), None)
    if frame is None:
        raise UnreadableVideo("no frame could be decoded for a poster")
    write_jpeg(frame, dest)


def seeks_by_index(container: av.container.InputContainer) -> bool:
    """Whether a seek lands on the keyframe before a time: MPEG-TS has no index, and FFmpeg
    seeking in one can skip past every keyframe (a camcorder's long GOP) and decode
    nothing; those are read from the start instead."""
    return container.format.name != "mpegts"


def write_jpeg(frame: av.VideoFrame, dest: str | Path, *, max_side: int = 640) -> None:
    """A JPEG of the frame, scaled within `max_side`. Written by Pillow: FFmpeg's mjpeg
    encoder, driven through PyAV, ignores any quality setting and wrote ~110 KB posters of
    photo-like frames; at quality 72 they are a fifth of that and look the same under a
    player (the run page's 100 KB budget, bench/page_weight.py)."""
    width, height = fit_within(frame.width, frame.height, max_side)
    image = frame.reformat(width=width, height=height, format="rgb24").to_image()
    turn = TURNS.get(quarter_turn(frame))
    if turn is not None:
        image = image.transpose(turn)  # as a player shows it (see display_rotation)
    image.save(dest, "JPEG", quality=POSTER_QUALITY, optimize=True)


POSTER_QUALITY = 72
# Pillow's turns are counterclockwise, as a display matrix's.
TURNS = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}


# --- Encoding: the H.264/AAC set-up shared by previews and the simulator's renders ---------


def even(value: float) -> int:
    """The nearest even size of at least 2 (yuv420p needs even widths and heights)."""
    return max(2, round(value / 2) * 2)


def fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """(width, height) scaled down, never up, so the longer side is at most max_side."""
    scale = min(1.0, max_side / max(width, height))
    return even(width * scale), even(height * scale)


def open_mp4(path: str | Path) -> OutputContainer:
    """An MP4 for writing with its index first, so browsers play and seek it at once."""
    return av.open(str(path), "w", format="mp4", options={"movflags": "+faststart"})


def add_h264(
    out: OutputContainer, width: int, height: int, rate: Fraction | int, *, crf: int = 23
) -> av.VideoStream:
    """An H.264/yuv420p stream every browser plays."""
    stream = out.add_stream("libx264", rate=rate)
    stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
    stream.options = {"preset": "veryfast", "crf": str(crf), "x264-params": "log-level=error"}
    return stream


def add_aac(out: OutputContainer) -> tuple[av.AudioStream, av.AudioResampler]:
    """A 48 kHz stereo AAC stream, and the resampler that feeds it any audio."""
    stream = out.add_stream("aac", rate=48000)
    stream.layout = "stereo"
    return stream, av.AudioResampler(format="fltp", layout="stereo", rate=48000)

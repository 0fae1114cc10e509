"""Real video files made with PyAV for tests: moving colour bars, optional audio."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def make_video(
    path: str | Path,
    *,
    width: int = 960,
    height: int = 720,
    seconds: float = 3.5,
    fps: int = 24,
    codec: str = "libx264",
    container_format: str | None = None,
    audio: bool = False,
    pix_fmt: str = "yuv420p",
    rotation: int = 0,
    marker: bool = False,
) -> Path:
    """Encode a small clip whose content moves, so motion-keeping can be seen.

    `rotation`: a display matrix turning the picture that many degrees counterclockwise,
    as phones write for portrait clips. `marker`: a grey picture instead, with a red block
    in the stored pixels' top-left corner (a tenth of each side), to see where a turn
    takes it."""
    path = Path(path)
    frames = round(seconds * fps)
    with av.open(str(path), "w", format=container_format) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        if rotation:
            stream.set_display_rotation(rotation)
        if codec in {"libx264", "libx265"}:
            stream.options = {"preset": "ultrafast"}
            if codec == "libx265":
                stream.options["x265-params"] = "log-level=error"
        audio_stream = None
        if audio:
            audio_stream = out.add_stream("aac", rate=48000)
            audio_stream.layout = "stereo"
        x = np.arange(width, dtype=np.int32)
        y = np.arange(height, dtype=np.int32)[:, None]
        for i in range(frames):
            shift = i * 8
            img = np.empty((height, width, 3), dtype=np.uint8)
            img[..., 0] = ((x + shift) % 256).astype(np.uint8)
            img[..., 1] = ((y + shift // 2) % 256).astype(np.uint8)
            img[..., 2] = (((x // 40 + i) % 2) * 200).astype(np.uint8)
            if marker:
                img[:] = 128
                img[: height // 10, : width // 10] = (255, 0, 0)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            frame.time_base = Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if audio_stream is not None:
            samples = 1024
            total = int(seconds * 48000)
            t0 = 0
            while t0 < total:
                t = (np.arange(samples) + t0) / 48000
                tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
                data = np.stack([tone, tone])
                frame = av.AudioFrame.from_ndarray(data, format="fltp", layout="stereo")
                frame.sample_rate = 48000
                frame.pts = t0
                out.mux(audio_stream.encode(frame))
                t0 += samples
            out.mux(audio_stream.encode(None))
    return path

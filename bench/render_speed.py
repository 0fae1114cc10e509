#!/usr/bin/env python
"""How fast the simulator renders: seconds of output video per second of wall time.

    .venv/bin/python bench/render_speed.py [--reference clip.mp4] [--seconds 10] [--runs 3]
        [--images 4]

Makes a real 1080p reference with PyAV (10 s at 30 fps with sound: a camera panning over a
textured scene with something moving across it), then renders a 10 s output from it in each
aspect ratio with the simulator's own renderer (playground/simulator/render.py), sound kept
(and with --images N, N reference images inset in the corners for the middle half),
and prints one row per aspect ratio, best of --runs: 1.0 is real time, above it faster.

Wall time depends on what else the machine is doing, so two more columns say so: the CPU
seconds the render used per second of video (what it costs, whatever the load; below the
number of cores, real time is within reach) and per second of wall time (2.0 = both cores
of a 2-core machine), and the load average just after.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playground.simulator import render  # noqa: E402  (needs ROOT on the path)


def make_reference(path: Path, *, width: int = 1920, height: int = 1080, seconds: int = 10) -> Path:
    """A 1080p clip that an encoder sees as camera footage: a slow pan over a textured
    landscape (smooth colour fields plus fine detail), a ball crossing it, and sensor
    noise that changes every frame."""
    fps, pan = 30, 4  # pixels the camera moves per frame
    frames = seconds * fps
    rng = np.random.default_rng(7)
    wide = width + frames * pan
    x = np.arange(wide, dtype=np.float32)[None, :]
    y = np.arange(height, dtype=np.float32)[:, None]
    land = np.empty((height, wide, 3), dtype=np.float32)
    land[..., 0] = 110 + 70 * np.sin(x / 173 + y / 97) + 30 * np.sin(x / 41)
    land[..., 1] = 120 + 60 * np.sin(x / 233 - y / 151) + 25 * np.cos(y / 37 + x / 89)
    land[..., 2] = 100 + 80 * np.cos(x / 311 + y / 211)
    land += rng.normal(0, 6, (height, wide, 1)).astype(np.float32)
    scene = np.clip(land, 4, 251).astype(np.uint8)
    # Noise of ±3 added modulo 256 (as uint8): the scene stays within 4..251, so it never
    # wraps round.
    grain = rng.integers(-3, 4, (8, height, width, 1), dtype=np.int8).view(np.uint8)
    radius = height // 9
    disc = np.hypot(*np.mgrid[-radius:radius, -radius:radius]) < radius
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "veryfast", "crf": "20", "x264-params": "log-level=error"}
        sound = out.add_stream("aac", rate=48000)
        sound.layout = "stereo"
        for i in range(frames):
            img = scene[:, i * pan : i * pan + width].copy()
            img += grain[i % len(grain)]  # sensor noise: it changes every frame
            cx = int(radius + (width - 2 * radius) * i / frames)
            cy = int(height / 2 + height / 4 * np.sin(i / 15))
            img[cy - radius : cy + radius, cx - radius : cx + radius][disc] = (235, 190, 40)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        for start in range(0, seconds * 48000, 1024):
            t = (np.arange(1024) + start) / 48000
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            chunk = av.AudioFrame.from_ndarray(
                np.stack([tone, tone]), format="fltp", layout="stereo"
            )
            chunk.sample_rate, chunk.pts = 48000, start
            out.mux(sound.encode(chunk))
        out.mux(sound.encode(None))
    return path


def make_images(folder: Path, count: int) -> list[Path]:
    """`count` 12-megapixel photos' worth of JPEG (4000×3000 gradients), as a phone sends."""
    x = np.linspace(0, 255, 4000, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, 3000, dtype=np.float32)[:, None, None]
    paths = []
    for n in range(1, count + 1):
        rgb = np.concatenate([x + 0 * y, y + 0 * x, (x + y) / 2 * n / count], axis=2)
        path = folder / f"image{n}.jpg"
        Image.fromarray(rgb.astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def describe(path: Path) -> str:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return (
            f"{stream.codec_context.width}×{stream.codec_context.height}, "
            f"{float(stream.average_rate or 0):g} fps, "
            f"{container.duration / av.time_base:.1f} s, {path.stat().st_size / 1e6:.1f} MB"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reference", type=Path, help="render from this clip instead")
    parser.add_argument("--seconds", type=int, default=10, help="output duration (3–10)")
    parser.add_argument("--runs", type=int, default=3, help="renders per aspect ratio")
    parser.add_argument("--prompt", default="@Video1 at golden hour, warm light")
    parser.add_argument("--images", type=int, default=0, help="reference images (0–4)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="render-speed-") as tmp:
        folder = Path(tmp)
        reference = args.reference or make_reference(folder / "reference.mp4")
        images = make_images(folder, args.images)
        print(f"reference: {describe(reference)}; output {args.seconds} s; prompt {args.prompt!r}")
        if images:
            print(f"images: {len(images)} JPEGs of 4000×3000, inset for the middle half")
        print(f"machine: {os.cpu_count()} cores\n")
        print(
            "| aspect | output | wall s | video s per wall s "
            "| CPU s per video s | CPU s per wall s | load |"
        )
        print("|---|---|---|---|---|---|---|")
        for aspect in ("16:9", "9:16", "1:1"):
            best: tuple[float, float] | None = None
            for _ in range(args.runs):
                dest = folder / "out.mp4"
                wall, cpu = time.perf_counter(), time.process_time()
                render.render(
                    reference,
                    dest,
                    prompt=args.prompt,
                    duration=args.seconds,
                    aspect_ratio=aspect,
                    keep_audio=True,
                    images=images,
                )
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                if best is None or wall < best[0]:
                    best = (wall, cpu)
            wall, cpu = best
            print(
                f"| {aspect} | {describe(dest)} | {wall:.2f} | **{args.seconds / wall:.2f}** "
                f"| {cpu / args.seconds:.2f} | {cpu / wall:.2f} | {os.getloadavg()[0]:.2f} |"
            )


if __name__ == "__main__":
    main()

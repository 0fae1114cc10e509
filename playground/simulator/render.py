"""The simulator's "model": a real output video rendered from the reference with PyAV.

Like the model, it answers 1080p at 24 fps in each aspect ratio (kling.OUTPUT_SIZES), with
the H.264/AAC set-up previews use (lib/video.py). It keeps the reference's motion (its
frames, time-fitted to the requested duration), crops or pads to the aspect ratio, grades
colour from words in the prompt and stamps every frame as SIMULATED: it never pretends to
be the model.

The reference images (`image_urls`) visibly arrive: during the middle half of the clip,
image N sits in corner N (1 top left, 2 top right, 3 bottom left, 4 bottom right), about a
fifth of the frame high.

It must render faster than real time on a 2-core machine (bench/render_speed.py measures
it), so a frame stays in YUV from the decoder to the encoder: libavfilter fits and grades it
in C, numpy only inks the stamp on the top strip and copies each image's planes (converted
once, at inset size) into its corner, and a source frame shown twice (slow motion) is
painted once.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps

from playground import kling
from playground.lib import video

CRF = 26  # a simulated result needs to look right, not archival

# Words in the prompt pick a grade: per-channel gains (R, G, B) and a saturation factor.
GRADES: list[tuple[str, tuple[float, float, float], float]] = [
    (r"noir|black and white|monochrome|grayscale|greyscale", (1.0, 1.0, 1.0), 0.0),
    (r"vintage|sepia|old film|retro|1920s|western", (1.12, 1.0, 0.78), 0.45),
    (r"neon|cyberpunk|synthwave|vaporwave|disco", (1.15, 0.85, 1.25), 1.5),
    (r"sunset|golden|warm|fire|desert|autumn|sunrise", (1.2, 1.02, 0.78), 1.15),
    (r"night|moon|winter|ice|snow|cold|blue|ocean|underwater|rain", (0.8, 0.95, 1.25), 0.9),
    (r"forest|jungle|green|spring|matrix", (0.88, 1.18, 0.88), 1.1),
]

# BT.601 limited range, what swscale and browsers assume for yuv420p video:
# (Y, Cb, Cr) = RGB_TO_YUV @ (R, G, B) + (16, 128, 128), with RGB in 0..255.
RGB_TO_YUV = (
    np.array(
        [
            [65.481, 128.553, 24.966],
            [-37.797, -74.203, 112.0],
            [112.0, -93.786, -18.214],
        ]
    )
    / 255
)

# A 5×7 bitmap for the stamp's letters; one string per row, "#" is ink.
FONT = {
    "S": [" ####", "#    ", "#    ", " ### ", "    #", "    #", "#### "],
    "I": ["#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "#####"],
    "M": ["#   #", "## ##", "# # #", "#   #", "#   #", "#   #", "#   #"],
    "U": ["#   #", "#   #", "#   #", "#   #", "#   #", "#   #", " ### "],
    "L": ["#    ", "#    ", "#    ", "#    ", "#    ", "#    ", "#####"],
    "A": [" ### ", "#   #", "#   #", "#####", "#   #", "#   #", "#   #"],
    "T": ["#####", "  #  ", "  #  ", "  #  ", "  #  ", "  #  ", "  #  "],
    "E": ["#####", "#    ", "#    ", "#### ", "#    ", "#    ", "#####"],
    "D": ["#### ", "#   #", "#   #", "#   #", "#   #", "#   #", "#### "],
}


def grade_for(prompt: str) -> tuple[str, tuple[float, float, float], float]:
    text = prompt.lower()
    for pattern, gains, saturation in GRADES:
        if re.search(pattern, text):
            return pattern.split("|")[0], gains, saturation
    return "neutral", (1.0, 1.0, 1.0), 1.05


def output_size(ref_width: int, ref_height: int, aspect_ratio: str) -> tuple[int, int]:
    """The model's output size: 1080p in the asked aspect ratio; for "auto", the one
    closest to the reference's own shape (compared as ratios, so portrait and landscape
    are treated alike)."""
    if aspect_ratio in kling.OUTPUT_SIZES:
        return kling.OUTPUT_SIZES[aspect_ratio]
    shape = ref_width / ref_height
    return min(
        kling.OUTPUT_SIZES.values(), key=lambda size: abs(math.log(shape * size[1] / size[0]))
    )


def _stamp(width: int) -> np.ndarray:
    """The word SIMULATED as a boolean mask, about a fifth of the frame wide."""
    rows = ["  ".join(FONT[c][r] for c in "SIMULATED") for r in range(7)]
    mask = np.array([[ch == "#" for ch in row] for row in rows], dtype=bool)
    scale = max(2, width // (5 * mask.shape[1]))
    return np.kron(mask, np.ones((scale, scale), dtype=bool))


def _filters(
    prompt: str, ref_width: int, ref_height: int, width: int, height: int
) -> list[tuple[str, str]]:
    """The libavfilter chain that fits a reference frame to the output and grades it.

    Fit: crop to the target aspect (cover) when little is lost, else pad (contain). Grade:
    the prompt's RGB gains and saturation, as one matrix in YCbCr (BT.601, limited range),
    kept to the terms libavfilter applies fast: luma's own gain (lutyuv) and each chroma
    plane's saturation plus a tint that grows with luma (colorcorrect), so black stays
    black and highlights take the colour.
    """
    cover = max(width / ref_width, height / ref_height)
    contain = min(width / ref_width, height / ref_height)
    kept = (contain / cover) ** 2  # fraction of the picture a cover-crop would keep
    scale = cover if kept >= 0.5 else contain
    sw, sh = video.even(ref_width * scale), video.even(ref_height * scale)
    chain = [("scale", f"{sw}:{sh}")] if (sw, sh) != (ref_width, ref_height) else []
    chain += [("format", "yuv420p"), ("setsar", "1")]
    if kept >= 0.5:
        chain.append(("crop", f"{width}:{height}:{(sw - width) // 4 * 2}:{(sh - height) // 4 * 2}"))
    else:
        chain.append(("pad", f"{width}:{height}:{(width - sw) // 4 * 2}:{(height - sh) // 4 * 2}"))

    _, gains, saturation = grade_for(prompt)
    matrix = RGB_TO_YUV @ np.diag(gains) @ np.linalg.inv(RGB_TO_YUV)  # on (Y-16, Cb-128, Cr-128)
    chain.append(("lutyuv", f"y=16+(val-16)*{matrix[0, 0]:.4f}"))
    # colorcorrect: chroma' = saturation * (chroma + luma * (high - low) / 2 + low), all in
    # 0..1 units with luma full scale; a tint of m per unit of (Y-16) is low = -16/255 * m,
    # high = low + 2 m.
    tints = {}
    for name, row in (("b", 1), ("r", 2)):
        low = -16 / 255 * matrix[row, 0]
        tints[name] = (low, low + 2 * matrix[row, 0])
    gain = saturation * (matrix[1, 1] + matrix[2, 2]) / 2
    chain.append(
        (
            "colorcorrect",
            f"rl={tints['r'][0]:.4f}:bl={tints['b'][0]:.4f}:"
            f"rh={tints['r'][1]:.4f}:bh={tints['b'][1]:.4f}:saturation={gain:.4f}",
        )
    )
    return chain


class UnreadableImage(ValueError):
    """A reference image the simulator (like the model) can't use; the message says which."""


class _Inset:
    """One reference image, converted once to yuv420p planes at its size in the frame, and
    where it goes: a fifth of the frame high (at most a third wide), in corner `number`."""

    BORDER = 4  # px of white round it, so it reads as a picture on any background

    def __init__(self, path: Path, number: int, width: int, height: int, top: int) -> None:
        box_w, box_h = width // 3, height // 5
        try:
            with Image.open(path) as image:
                if image.format not in kling.IMAGE_FORMATS:
                    raise UnreadableImage(
                        f"Reference image {number} is a {image.format} file; the model takes "
                        "JPEG or PNG only."
                    )
                image.draft("RGB", (box_w, box_h))  # a JPEG decodes at a fraction of its size
                # Shrunk before it is turned or converted, so no full-size copy is made
                # (twice the box, either way up: the resize below does the rest).
                side = 2 * max(box_w, box_h)
                image.thumbnail((side, side))
                rgb = ImageOps.exif_transpose(image).convert("RGB")
        except (OSError, SyntaxError, ValueError) as exc:
            if isinstance(exc, UnreadableImage):
                raise
            raise UnreadableImage(
                f"Reference image {number} could not be read as a JPEG or PNG image."
            ) from exc
        scale = min(box_w / rgb.width, box_h / rgb.height)
        w, h = video.even(rgb.width * scale), video.even(rgb.height * scale)
        b = self.BORDER
        picture = ImageOps.expand(
            rgb.resize((w - 2 * b, h - 2 * b), Image.Resampling.BILINEAR, reducing_gap=2.0),
            border=b,
            fill=(255, 255, 255),
        )
        yuv = np.asarray(picture, dtype=np.float32) @ RGB_TO_YUV.T + (16, 128, 128)
        self.y = np.clip(yuv[..., 0], 16, 235).astype(np.uint8)
        # 4:2:0: one chroma sample per 2×2 block, their mean.
        chroma = yuv[..., 1:].reshape(h // 2, 2, w // 2, 2, 2).mean(axis=(1, 3))
        self.cb, self.cr = (np.clip(chroma[..., i], 16, 240).astype(np.uint8) for i in (0, 1))
        margin = video.even(height / 40)
        self.x = margin if number in (1, 3) else width - w - margin
        self.top = top + margin if number in (1, 2) else height - h - margin

    def paint(self, luma: np.ndarray, cb: np.ndarray, cr: np.ndarray) -> None:
        (h, w), x, y = self.y.shape, self.x, self.top
        luma[y : y + h, x : x + w] = self.y
        cb[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = self.cb
        cr[y // 2 : (y + h) // 2, x // 2 : (x + w) // 2] = self.cr


class _Painter:
    """Turns a decoded reference frame into an output frame: fit, grade (libavfilter, in
    C), then the SIMULATED stamp (numpy, on the top strip only) and, where asked, the
    reference images in the corners."""

    def __init__(
        self,
        prompt: str,
        stream: av.VideoStream,
        width: int,
        height: int,
        images: Sequence[Path] = (),
        rotation: int = 0,
    ) -> None:
        # Turned upright first, as a player shows it (a phone's portrait clip).
        ref_width, ref_height = video.displayed(
            stream.codec_context.width, stream.codec_context.height, rotation
        )
        self.graph = video.filter_chain(
            stream,
            video.upright_filters(rotation)
            + _filters(prompt, ref_width, ref_height, width, height),
        )
        self.stamp = _stamp(width)
        sh, sw = self.stamp.shape
        # A strip along the top (video controls cover the bottom of the picture).
        self.band_bottom = video.even(sh + 2 * (sh // 3))
        self.stamp_at = (sh // 3, (width - sw) // 2)
        self.insets = [
            _Inset(path, number, width, height, self.band_bottom)
            for number, path in enumerate(images[: kling.IMAGE_MAX_COUNT], start=1)
        ]

    def __call__(self, frame: av.VideoFrame, *, insets: bool = False) -> av.VideoFrame:
        out = video.filtered(self.graph, frame)
        luma, cb, cr = _planes(out)
        # Darken a strip so the stamp reads on any picture, then ink the stamp.
        luma[: self.band_bottom] //= 3
        cb[: self.band_bottom // 2] = 128
        cr[: self.band_bottom // 2] = 128
        y, x = self.stamp_at
        sh, sw = self.stamp.shape
        luma[y : y + sh, x : x + sw][self.stamp] = 235
        if insets:
            for inset in self.insets:
                inset.paint(luma, cb, cr)
        return out


def _planes(frame: av.VideoFrame) -> list[np.ndarray]:
    """A yuv420p frame's Y, Cb and Cr planes as arrays over its own memory (no copy)."""
    views = []
    for plane in frame.planes:
        rows = np.frombuffer(memoryview(plane), dtype=np.uint8)[: plane.line_size * plane.height]
        views.append(rows.reshape(plane.height, plane.line_size)[:, : plane.width])
    return views


def render(
    source: str | Path,
    dest: str | Path,
    *,
    prompt: str,
    duration: float,
    aspect_ratio: str,
    keep_audio: bool,
    images: Sequence[Path] = (),
) -> None:
    """Render dest from source (and the reference images, @Image1 first); dest appears
    only when complete (written to a .part file). Raises UnreadableImage for a bad image."""
    dest = Path(dest)
    part = dest.with_name(f"{dest.stem}.{os.getpid()}.{threading.get_ident()}.part.mp4")
    try:
        _render(Path(source), part, prompt, duration, aspect_ratio, keep_audio, images)
        part.replace(dest)
    finally:
        part.unlink(missing_ok=True)


def _render(
    source: Path,
    part: Path,
    prompt: str,
    duration: float,
    aspect_ratio: str,
    keep_audio: bool,
    images: Sequence[Path],
) -> None:
    rate = kling.OUTPUT_FPS
    rotation = video.display_rotation(source)
    with av.open(str(source)) as inp, video.open_mp4(part) as out:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        width, height = output_size(
            *video.displayed(vin.codec_context.width, vin.codec_context.height, rotation),
            aspect_ratio,
        )
        paint = _Painter(prompt, vin, width, height, images, rotation)
        vout = video.add_h264(out, width, height, rate, crf=CRF)
        vout.thread_type = "FRAME"  # x264's frame threads keep both cores busy
        ain = inp.streams.audio[0] if keep_audio and inp.streams.audio else None
        if ain is not None:
            aout, resampler = video.add_aac(out)
            audio_left = int(duration * aout.rate)
        else:
            audio_left = 0

        ref_seconds = video.stream_seconds(inp, vin)
        start = float(vin.start_time * vin.time_base) if vin.start_time and vin.time_base else 0.0
        total = round(duration * rate)
        # The images show during the middle half of the clip.
        insets_from, insets_until = (total // 4, total - total // 4) if paint.insets else (0, 0)
        index = 0
        current: av.VideoFrame | None = None  # the latest source frame…
        painted: av.VideoFrame | None = None  # …and its output, made when first shown
        painted_insets = False  # …with the images on it or not

        def emit(frame: av.VideoFrame) -> None:
            nonlocal index, painted, painted_insets
            insets = insets_from <= index < insets_until
            # A frame shown across the start or end of the images is painted afresh (never
            # changed in place: the encoder may still be reading the one it was given).
            if painted is None or painted_insets != insets:
                painted, painted_insets = paint(frame, insets=insets), insets
            painted.pts = index
            painted.time_base = Fraction(1, rate)
            out.mux(vout.encode(painted))
            index += 1

        samples = 0
        for packet in inp.demux(*[s for s in (vin, ain) if s is not None]):
            if packet.stream is vin:
                if index >= total:
                    continue
                # Fit the whole reference motion into the requested duration: output frame
                # k shows the source at k/total of its length (slow motion or fast forward).
                for frame in packet.decode():
                    if not isinstance(frame, av.VideoFrame):
                        continue
                    if current is None:
                        current = frame
                    t = (frame.time or 0.0) - start
                    while index < total and t > index * ref_seconds / total:
                        emit(current)
                    if frame is not current:
                        current, painted = frame, None
            elif audio_left > 0:
                for frame in packet.decode():
                    if not isinstance(frame, av.AudioFrame):
                        continue
                    for chunk in resampler.resample(frame):
                        chunk.pts = samples
                        samples += chunk.samples
                        audio_left -= chunk.samples
                        out.mux(aout.encode(chunk))
            if index >= total and audio_left <= 0:
                break
        while index < total and current is not None:
            emit(current)
        out.mux(vout.encode(None))
        if ain is not None:
            out.mux(aout.encode(None))

"""The simulator's "model": a real output video rendered from the reference with PyAV.

It keeps the reference's motion (its frames, time-fitted to the requested duration), crops
or pads to the aspect ratio, grades colour from words in the prompt, stamps every frame as
SIMULATED, and writes H.264/yuv420p MP4 with the moov atom first so browsers play and seek
it at once. It never pretends to be the model: the stamp is on every frame.
"""

from __future__ import annotations

import os
import re
import threading
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

OUTPUT_FPS = 24
SHORT_SIDE = 720
ASPECTS = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1)}

# Words in the prompt pick a grade: per-channel gains (R, G, B) and a saturation factor.
GRADES: list[tuple[str, tuple[float, float, float], float]] = [
    (r"noir|black and white|monochrome|grayscale|greyscale", (1.0, 1.0, 1.0), 0.0),
    (r"vintage|sepia|old film|retro|1920s|western", (1.12, 1.0, 0.78), 0.45),
    (r"neon|cyberpunk|synthwave|vaporwave|disco", (1.15, 0.85, 1.25), 1.5),
    (r"sunset|golden|warm|fire|desert|autumn|sunrise", (1.2, 1.02, 0.78), 1.15),
    (r"night|moon|winter|ice|snow|cold|blue|ocean|underwater|rain", (0.8, 0.95, 1.25), 0.9),
    (r"forest|jungle|green|spring|matrix", (0.88, 1.18, 0.88), 1.1),
]

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
    aw, ah = ASPECTS.get(aspect_ratio, (ref_width, ref_height))
    if aw >= ah:
        height, width = SHORT_SIDE, SHORT_SIDE * aw / ah
    else:
        width, height = SHORT_SIDE, SHORT_SIDE * ah / aw
    return round(width / 2) * 2, round(height / 2) * 2


def _stamp(width: int) -> np.ndarray:
    """The word SIMULATED as a boolean mask, about a fifth of the frame wide."""
    rows = ["  ".join(FONT[c][r] for c in "SIMULATED") for r in range(7)]
    mask = np.array([[ch == "#" for ch in row] for row in rows], dtype=bool)
    scale = max(2, width // (5 * mask.shape[1]))
    return np.kron(mask, np.ones((scale, scale), dtype=bool))


class _Grader:
    """Grades and stamps one frame; works in YUV so saturation only touches chroma."""

    def __init__(self, prompt: str, width: int, height: int) -> None:
        _, gains, saturation = grade_for(prompt)
        ramp = np.arange(256, dtype=np.float32)
        self.luts = [np.clip(ramp * g, 0, 255).astype(np.uint8) for g in gains]
        self.chroma_lut = np.clip(128 + (ramp - 128) * saturation, 0, 255).astype(np.uint8)
        self.width, self.height = width, height
        self.stamp = _stamp(width)
        sh, sw = self.stamp.shape
        # A strip along the top (video controls cover the bottom of the picture).
        self.band_bottom = (sh + 2 * (sh // 3)) // 2 * 2
        self.stamp_at = (sh // 3, (width - sw) // 2)

    def __call__(self, rgb: np.ndarray) -> av.VideoFrame:
        for c in range(3):
            rgb[..., c] = self.luts[c][rgb[..., c]]
        yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        planes = yuv.to_ndarray()  # Y rows, then U and V packed below at quarter size
        h, w = self.height, self.width
        luma, chroma = planes[:h], planes[h:]
        chroma[:] = self.chroma_lut[chroma]
        # Darken a strip so the stamp reads on any picture, then ink the stamp.
        luma[: self.band_bottom] //= 3
        chroma.reshape(2, h // 2, w // 2)[:, : self.band_bottom // 2] = 128
        y, x = self.stamp_at
        sh, sw = self.stamp.shape
        luma[y : y + sh, x : x + sw][self.stamp] = 235
        return av.VideoFrame.from_ndarray(planes, format="yuv420p")


def _fit(frame: av.VideoFrame, width: int, height: int) -> np.ndarray:
    """Crop to the target aspect (cover) when little is lost, else pad (contain)."""
    cover = max(width / frame.width, height / frame.height)
    contain = min(width / frame.width, height / frame.height)
    kept = (contain / cover) ** 2  # fraction of the picture a cover-crop would keep
    scale = cover if kept >= 0.5 else contain
    sw = max(2, round(frame.width * scale / 2) * 2)
    sh = max(2, round(frame.height * scale / 2) * 2)
    img = frame.to_ndarray(width=sw, height=sh, format="rgb24")
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    # Centre the scaled picture on the canvas, cropping whatever overhangs.
    src_y, dst_y = max(0, (sh - height) // 2), max(0, (height - sh) // 2)
    src_x, dst_x = max(0, (sw - width) // 2), max(0, (width - sw) // 2)
    h, w = min(sh, height), min(sw, width)
    canvas[dst_y : dst_y + h, dst_x : dst_x + w] = img[src_y : src_y + h, src_x : src_x + w]
    return canvas


def render(
    source: str | Path,
    dest: str | Path,
    *,
    prompt: str,
    duration: float,
    aspect_ratio: str,
    keep_audio: bool,
) -> None:
    """Render dest from source; dest appears only when complete (written to a .part file)."""
    dest = Path(dest)
    part = dest.with_name(f"{dest.stem}.{os.getpid()}.{threading.get_ident()}.part.mp4")
    with av.open(str(source)) as inp:
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        ref_seconds = (
            float(vin.duration * vin.time_base) if vin.duration else (inp.duration / av.time_base)
        )
        width, height = output_size(vin.codec_context.width, vin.codec_context.height, aspect_ratio)
        grader = _Grader(prompt, width, height)
        total = round(duration * OUTPUT_FPS)
        with av.open(str(part), "w", format="mp4", options={"movflags": "+faststart"}) as out:
            vout = out.add_stream("libx264", rate=OUTPUT_FPS)
            vout.width, vout.height, vout.pix_fmt = width, height, "yuv420p"
            vout.options = {"preset": "veryfast", "crf": "26", "x264-params": "log-level=error"}
            start = float(vin.start_time * vin.time_base) if vin.start_time else 0.0
            current = None
            index = 0
            # Fit the whole reference motion into the requested duration: output frame k
            # shows the source at k/total of its length (slow motion or fast forward).
            for frame in inp.decode(vin):
                t = (frame.time or 0.0) - start
                while index < total and t > index * ref_seconds / total:
                    if current is None:
                        current = frame
                    _emit(out, vout, grader, current, width, height, index)
                    index += 1
                current = frame
                if index >= total:
                    break
            while index < total and current is not None:
                _emit(out, vout, grader, current, width, height, index)
                index += 1
            out.mux(vout.encode(None))
        if keep_audio:
            _add_audio(source, part, duration)
    part.replace(dest)


def _emit(out, vout, grader, frame, width: int, height: int, index: int) -> None:
    picture = grader(_fit(frame, width, height))
    picture.pts = index
    picture.time_base = Fraction(1, OUTPUT_FPS)
    out.mux(vout.encode(picture))


def _add_audio(source: str | Path, video_only: Path, duration: float) -> None:
    """Remux the rendered video with the reference's audio (AAC), cut to the duration."""
    with av.open(str(source)) as probe_in:
        if not probe_in.streams.audio:
            return
    muxed = video_only.with_name(video_only.name + ".av.mp4")
    with (
        av.open(str(video_only)) as vin,
        av.open(str(source)) as ain,
        av.open(str(muxed), "w", format="mp4", options={"movflags": "+faststart"}) as out,
    ):
        vsrc = vin.streams.video[0]
        vdst = out.add_stream_from_template(vsrc)
        adst = out.add_stream("aac", rate=48000)
        adst.layout = "stereo"
        resampler = av.AudioResampler(format="fltp", layout="stereo", rate=48000)
        for packet in vin.demux(vsrc):
            if packet.dts is None:
                continue
            packet.stream = vdst
            out.mux(packet)
        limit = int(duration * 48000)
        written = 0
        for frame in ain.decode(ain.streams.audio[0]):
            for chunk in resampler.resample(frame):
                if written >= limit:
                    break
                chunk.pts = written
                written += chunk.samples
                out.mux(adst.encode(chunk))
            if written >= limit:
                break
        out.mux(adst.encode(None))
    muxed.replace(video_only)

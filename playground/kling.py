"""Facts about the model, Kling O1 Reference Video-to-Video [Pro] on AIgateway: one source.

Forms, checks, help texts, templates (through the `limits` context value), the browser's
early checks (through `data-` attributes) and the simulator all read them from here.
"""

from __future__ import annotations

from playground.lib.media import size_label

MODEL_ID = "kuaishou/kling-video-o1-video-to-video-reference"
# USD per second of output video (the Pro rate with video input), in micro-dollars: money
# is never a float here.
PRICE_PER_SECOND_MICROS = 168_000

PROMPT_MAX_CHARS = 2500
DURATIONS = range(3, 11)  # seconds of output, whole seconds
DEFAULT_DURATION = 5
ASPECT_RATIOS = [
    ("auto", "Auto (match the reference)"),
    ("16:9", "16:9 landscape"),
    ("9:16", "9:16 portrait"),
    ("1:1", "1:1 square"),
]
# The output: 1080p at 24 fps, in each aspect ratio.
OUTPUT_FPS = 24
OUTPUT_SIZES = {"16:9": (1920, 1080), "9:16": (1080, 1920), "1:1": (1080, 1080)}

# The reference video.
REFERENCE_MAX_BYTES = 200 * 1024 * 1024
REFERENCE_MIN_SIDE, REFERENCE_MAX_SIDE = 720, 2160
REFERENCE_MIN_SECONDS, REFERENCE_MAX_SECONDS = 3.0, 10.05
REFERENCE_MIN_FPS, REFERENCE_MAX_FPS = 24.0, 60.0
# Not the model's: how long a clip this instance keeps for "Fix it" (a segment is cut from
# it). Longer ones are refused at upload, so nobody can park hours of video to transcode.
FIXABLE_MAX_SECONDS = 120.0

# Reference images (`image_urls`), cited in the prompt as @Image1 … @Image4.
IMAGE_MAX_COUNT = 4
IMAGE_MIN_SIDE = 300
IMAGE_MAX_BYTES = 10 * 1024 * 1024
# Width over height, from 1:2.5 (portrait) to 2.5:1 (landscape).
IMAGE_MIN_ASPECT, IMAGE_MAX_ASPECT = 1 / 2.5, 2.5
IMAGE_FORMATS = ("JPEG", "PNG")  # as Pillow names them


def reference_limits_text() -> str:
    """The reference limits in one line, for help texts and messages."""
    return (
        f"MP4 or MOV, {REFERENCE_MIN_SECONDS:g}–{REFERENCE_MAX_SECONDS:g} s, "
        f"{REFERENCE_MIN_SIDE}–{REFERENCE_MAX_SIDE} px, "
        f"{REFERENCE_MIN_FPS:g}–{REFERENCE_MAX_FPS:g} fps, "
        f"up to {size_label(REFERENCE_MAX_BYTES)}"
    )


def image_limits_text() -> str:
    """The image limits in one line, for help texts and messages."""
    return (
        f"JPEG or PNG, at least {IMAGE_MIN_SIDE} px on each side, aspect ratio between "
        f"1:{IMAGE_MAX_ASPECT:g} and {IMAGE_MAX_ASPECT:g}:1, up to {size_label(IMAGE_MAX_BYTES)} "
        f"each, at most {IMAGE_MAX_COUNT}"
    )


def limits() -> dict[str, object]:
    """What templates and the browser's scripts need to know (the `limits` context value)."""
    return {
        "prompt_chars": PROMPT_MAX_CHARS,
        "max_bytes": REFERENCE_MAX_BYTES,
        "max_size": size_label(REFERENCE_MAX_BYTES),
        "reference": reference_limits_text(),
        "image_count": IMAGE_MAX_COUNT,
        "image_numbers": list(range(1, IMAGE_MAX_COUNT + 1)),  # @Image1 … @Image4
        "image_max_bytes": IMAGE_MAX_BYTES,
        "image_max_size": size_label(IMAGE_MAX_BYTES),
        "image_min_side": IMAGE_MIN_SIDE,
        "images": image_limits_text(),
        "price_per_second_micros": PRICE_PER_SECOND_MICROS,
    }

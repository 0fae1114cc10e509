"""Phone clips that a player turns: portrait video stored as landscape pixels plus a
display matrix. Whatever we make of one (a fixed copy, a preview, a poster, the
simulator's render) is turned in its pixels, so it is upright wherever it is shown."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from playground.lib import conform, video
from playground.simulator import render
from tests.videos import make_video


def red_corner(rgb: np.ndarray) -> str:
    """Which corner of the picture holds the red marker block."""
    height, width = rgb.shape[:2]
    red = (rgb[..., 0] > 180) & (rgb[..., 1] < 90) & (rgb[..., 2] < 90)
    ys, xs = np.nonzero(red)
    assert len(ys), "no red marker in the picture"
    vertical = "top" if ys.mean() < height / 2 else "bottom"
    horizontal = "left" if xs.mean() < width / 2 else "right"
    return f"{vertical}-{horizontal}"


def first_frame(path: Path) -> av.VideoFrame:
    with av.open(str(path)) as container:
        return next(container.decode(video=0))


# Where the stored top-left corner appears once a player has turned the picture.
TURNED = [(0, "top-left"), (90, "bottom-left"), (180, "bottom-right"), (270, "top-right")]


@pytest.mark.parametrize(("rotation", "corner"), TURNED)
def test_a_fixed_copy_is_turned_in_its_pixels(tmp_path: Path, rotation: int, corner: str) -> None:
    source = make_video(
        tmp_path / "phone.mp4", width=320, height=240, seconds=1, rotation=rotation, marker=True
    )
    facts = video.probe(source)
    assert facts.rotation == rotation
    turned = rotation in (90, 270)
    assert (facts.width, facts.height) == ((240, 320) if turned else (320, 240))

    copy = tmp_path / "copy.mp4"
    conform.conform(source, copy, start=0, end=None, progress=lambda _: None)
    frame = first_frame(copy)
    assert frame.rotation == 0, "the copy leans on a display matrix"
    assert (frame.width, frame.height) == (facts.width, facts.height)
    assert red_corner(frame.to_ndarray(format="rgb24")) == corner


@pytest.mark.parametrize(("rotation", "corner"), TURNED[1:])
def test_a_poster_is_upright(tmp_path: Path, rotation: int, corner: str) -> None:
    source = make_video(
        tmp_path / "phone.mp4", width=320, height=240, seconds=1, rotation=rotation, marker=True
    )
    poster = tmp_path / "poster.jpg"
    video.save_poster(source, poster, at=0)
    with Image.open(poster) as image:
        rgb = np.asarray(image.convert("RGB"))
    assert rgb.shape[:2] == ((320, 240) if rotation in (90, 270) else (240, 320))
    assert red_corner(rgb) == corner


def test_the_simulator_renders_a_portrait_phone_clip_as_portrait(tmp_path: Path) -> None:
    source = make_video(tmp_path / "phone.mp4", width=384, height=216, seconds=1, rotation=270)
    dest = tmp_path / "out.mp4"
    render.render(source, dest, prompt="@Video1", duration=1, aspect_ratio="auto", keep_audio=False)
    facts = video.probe(dest)
    assert (facts.width, facts.height, facts.rotation) == (1080, 1920, 0)

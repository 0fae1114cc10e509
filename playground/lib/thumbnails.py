"""Small JPEGs of posters for lists: the 640 px poster shrunk to what a row shows.

A list of 25 runs with full posters weighed hundreds of KB; at their display size they
weigh about 1.5 KB each. Made on first request and kept next to the poster
(`poster.jpg` → `poster.thumb.jpg`), so whatever removes the poster's folder or file
removes the thumbnail with it (see `remove_thumbnail`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from PIL import Image

# Lists show posters at 96×54 CSS px (history; Generate's recent runs smaller), and the
# thumbnail is that size: the history's 25 rows must stay under 100 KB with everything else
# on the page (bench/page_weight.py). At twice the size, for high-density screens, they
# weighed 3.5–5 KB each, 90–120 KB a page; at this size and quality, 1.2–1.4 KB. The
# thumbnail covers this box (never smaller on either side, so `object-fit: cover` has
# enough), never larger than the poster.
THUMB_BOX = (96, 54)
QUALITY = 60


def thumbnail_path(poster: Path) -> Path:
    return poster.with_name(poster.stem + ".thumb.jpg")


def thumbnail(poster: Path) -> Path:
    """The poster's thumbnail, made now if it is missing or older than the poster.

    Two requests racing both write a complete file under a name of their own and rename it
    into place, so no reader ever sees half a JPEG.
    """
    thumb = thumbnail_path(poster)
    try:
        if thumb.stat().st_mtime >= poster.stat().st_mtime:
            return thumb
    except FileNotFoundError:
        pass
    with Image.open(poster) as image:
        # JPEG decoding can scale by 1/2, 1/4, 1/8 on the way in: far less work than
        # decoding 640 px and shrinking afterwards.
        image.draft("RGB", _cover_size(image.size))
        small = image.convert("RGB").resize(_cover_size(image.size), Image.Resampling.LANCZOS)
    partial = thumb.with_name(f".{thumb.name}.{secrets.token_hex(6)}.tmp")
    try:
        small.save(partial, "JPEG", quality=QUALITY, optimize=True)
        os.replace(partial, thumb)
    finally:
        partial.unlink(missing_ok=True)
    return thumb


def remove_thumbnail(poster: Path) -> None:
    thumbnail_path(poster).unlink(missing_ok=True)


def _cover_size(size: tuple[int, int]) -> tuple[int, int]:
    """The smallest size with the poster's aspect that covers THUMB_BOX, capped at the
    poster's own size."""
    width, height = size
    scale = min(1.0, max(THUMB_BOX[0] / width, THUMB_BOX[1] / height))
    return max(1, round(width * scale)), max(1, round(height * scale))

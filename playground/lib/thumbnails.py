"""Small JPEGs of posters for lists: the 640 px poster shrunk to what a row shows.

A list of 25 runs with full posters weighed hundreds of KB; at their display size they
weigh about 1.5 KB each. Made on first request and kept next to the poster
(`poster.jpg` → `poster.thumb.jpg`), so whatever removes the poster's folder or file
removes the thumbnail with it (see `remove_thumbnail`).
"""

from __future__ import annotations

import hashlib
import io
import posixpath

from django.core.cache import cache
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from PIL import Image

# Lists show posters at 96×54 CSS px (history; Generate's recent runs smaller), and the
# thumbnail is that size: the history's 25 rows must stay under 100 KB with everything else
# on the page (bench/page_weight.py). At twice the size, for high-density screens, they
# weighed 3.5–5 KB each, 90–120 KB a page; at this size and quality, 1.2–1.4 KB. The
# thumbnail covers this box (never smaller on either side, so `object-fit: cover` has
# enough), never larger than the poster.
THUMB_BOX = (96, 54)
QUALITY = 60
REMEMBERED_SECONDS = 24 * 3600


def thumbnail_name(poster: str) -> str:
    """The stored name of a poster's thumbnail: `a/poster.jpg` → `a/poster.thumb.jpg`."""
    return posixpath.splitext(poster)[0] + ".thumb.jpg"


def known_thumbnail(poster: str) -> str | None:
    """The thumbnail's stored name if it was made or checked lately, with no storage call:
    on a bucket each check is a request (about four per list row before this was kept)."""
    known: str | None = cache.get(_cache_key(poster))
    return known


def thumbnail(poster: str) -> str:
    """The stored name of the poster's thumbnail, made now if it is missing or older than
    the poster; remembered in the cache (posters are written once, under names of their
    own, so a remembered thumbnail stays right until the poster is removed).

    Two requests racing both store a complete file; the store replaces a file whole (see
    lib/media.LocalMediaStorage; a bucket's PUT does), so no reader sees half a JPEG.
    """
    thumb = thumbnail_name(poster)
    if default_storage.exists(thumb) and (
        default_storage.get_modified_time(thumb) >= default_storage.get_modified_time(poster)
    ):
        cache.set(_cache_key(poster), thumb, REMEMBERED_SECONDS)
        return thumb
    # A poster is a few tens of KB: read whole, it is no burden.
    with default_storage.open(poster, "rb") as fh, Image.open(io.BytesIO(fh.read())) as image:
        # JPEG decoding can scale by 1/2, 1/4, 1/8 on the way in: far less work than
        # decoding 640 px and shrinking afterwards.
        image.draft("RGB", _cover_size(image.size))
        small = image.convert("RGB").resize(_cover_size(image.size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, "JPEG", quality=QUALITY, optimize=True)
    stored = default_storage.save(thumb, ContentFile(out.getvalue()))
    cache.set(_cache_key(poster), stored, REMEMBERED_SECONDS)
    return stored


def remove_thumbnail(poster: str) -> None:
    if poster:
        cache.delete(_cache_key(poster))
        default_storage.delete(thumbnail_name(poster))


def _cache_key(poster: str) -> str:
    return "thumb:" + hashlib.sha256(poster.encode()).hexdigest()[:32]


def _cover_size(size: tuple[int, int]) -> tuple[int, int]:
    """The smallest size with the poster's aspect that covers THUMB_BOX, capped at the
    poster's own size."""
    width, height = size
    scale = min(1.0, max(THUMB_BOX[0] / width, THUMB_BOX[1] / height))
    return max(1, round(width * scale)), max(1, round(height * scale))

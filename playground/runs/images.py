"""Reference images (@Image1 … @Image4): taking an upload in, checked with Pillow.

An image is a Reference row of kind "image": the file goes to the provider as uploaded
(nothing is stripped or re-encoded), and a small JPEG thumbnail, kept as its `poster`, is
what the pages show.
"""

from __future__ import annotations

import re
import uuid
import warnings
from pathlib import Path

from django.contrib.auth.models import User
from django.core.files.uploadedfile import UploadedFile
from PIL import Image, ImageOps, UnidentifiedImageError

from playground import kling
from playground.lib import media
from playground.lib.media import sizes_apart
from playground.runs.models import Reference, ReferenceKind
from playground.runs.references import ReferenceRejected, storage_use

THUMBNAIL_SIDE = 160
# Not the model's limit but this instance's: a 10 MB PNG of one colour can claim
# 9,400×9,400 (88 MP, just under Pillow's own "decompression bomb" line), and decoding it
# takes about 350 MB, once per copy, in the web process and again in each render. 24 MP
# (6000×4000, more than most phone photos) keeps a decode near 100 MB.
MAX_PIXELS = 24_000_000
SUFFIXES = {"JPEG": ".jpg", "PNG": ".png"}


CITATION = re.compile(r"@image(\d+)", re.IGNORECASE)


def citation_problem(prompt: str, attached: int) -> str:
    """Why the prompt's citations don't match the images attached, or ''. A dangling
    @ImageN would reach the provider pointing at nothing."""
    cited = max((int(n) for n in CITATION.findall(prompt)), default=0)
    if cited <= attached:
        return ""
    if attached == 0:
        have = "no images are attached"
    elif attached == 1:
        have = "only 1 image is attached"
    else:
        have = f"only {attached} images are attached"
    return f"The prompt cites @Image{cited}, but {have}."


class ImageRejected(ReferenceRejected):
    """The upload is not an image the model takes; the message names the limit and the
    file's value."""


def image_problems(name: str, fmt: str, width: int, height: int) -> list[str]:
    """Every way an image breaks the model's limits, each naming the limit and the value."""
    if fmt not in kling.IMAGE_FORMATS:
        return [f"“{name}” is a {fmt} image; the model takes JPEG or PNG only."]
    problems = []
    if min(width, height) < kling.IMAGE_MIN_SIDE:
        problems.append(
            f"“{name}” is {width}×{height} px; each side must be at least "
            f"{kling.IMAGE_MIN_SIDE} px."
        )
    aspect = width / height
    if not kling.IMAGE_MIN_ASPECT <= aspect <= kling.IMAGE_MAX_ASPECT:
        problems.append(
            f"“{name}” is {width}×{height} px, an aspect ratio of {_ratio(aspect)}; it must "
            f"be between 1:{kling.IMAGE_MAX_ASPECT:g} and {kling.IMAGE_MAX_ASPECT:g}:1."
        )
    if width * height > MAX_PIXELS:
        problems.append(
            f"“{name}” is {width}×{height} px ({width * height / 1e6:.0f} megapixels); "
            f"images over {MAX_PIXELS / 1e6:.0f} megapixels can’t be taken."
        )
    return problems


def _ratio(aspect: float) -> str:
    """1:4 for a tall image, 3:1 for a wide one; with more digits when it would read as the
    limit itself (1000×2505 px is 1:2.505, not "1:2.5")."""
    side = max(aspect, 1 / aspect)
    label = f"{side:.3g}"
    if float(label) == kling.IMAGE_MAX_ASPECT:
        label = f"{side:.5g}"
    return f"{label}:1" if aspect >= 1 else f"1:{label}"


def store_image(user: User, upload: UploadedFile) -> Reference:
    """Check an uploaded image against the model's limits and the user's quota; keep it (and
    a thumbnail) only if it passes. Raises ImageRejected with the reason."""
    name = Path(upload.name or "image").name
    size = upload.size or 0
    if size > kling.IMAGE_MAX_BYTES:
        size_text, limit_text = sizes_apart(size, kling.IMAGE_MAX_BYTES)
        raise ImageRejected(f"“{name}” is {size_text}; each image may be at most {limit_text}.")
    if problem := storage_use(user).refusal(name, size):
        raise ImageRejected(problem)
    code = uuid.uuid4()
    folder = f"references/{code}"
    # Checked on disk first: only an image that is kept goes to the store.
    with media.scratch() as part, media.scratch(".jpg") as poster:
        with part.open("wb") as fh:
            for chunk in upload.chunks():
                fh.write(chunk)
        fmt, width, height = _check(part, name)
        _save_thumbnail(part, poster, name)
        size = part.stat().st_size
        try:
            target = media.save(f"{folder}/original{SUFFIXES[fmt]}", part)
            poster_name = media.save(f"{folder}/poster.jpg", poster)
        except BaseException:
            media.delete_folder(folder)  # nothing is kept of a file half stored
            raise
    return Reference.objects.create(
        code=code,
        user=user,
        kind=ReferenceKind.IMAGE,
        name=name[:255],
        file=target,
        poster=poster_name,
        format_name=fmt,
        codec=fmt.lower(),
        width=width,
        height=height,
        size=size,
    )


def _unreadable(name: str, why: str) -> ImageRejected:
    return ImageRejected(
        f"“{name}” can’t be used: {why}. Upload an image: {kling.image_limits_text()}."
    )


# The ISO "ftyp" brands of HEIF photos (iPhones and many Androids) and AVIF: images Pillow
# does not read, but whose owner deserves to hear what they are rather than "not an image".
PHOTO_BRANDS = {
    b"heic": "HEIC", b"heix": "HEIC", b"heim": "HEIC", b"heis": "HEIC", b"hevc": "HEIC",
    b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF",
}  # fmt: skip


def _photo_format_pillow_cannot_read(path: Path) -> str:
    with path.open("rb") as file:
        head = file.read(12)
    return PHOTO_BRANDS.get(head[8:12], "") if head[4:8] == b"ftyp" else ""


def _check(path: Path, name: str) -> tuple[str, int, int]:
    """(format, width, height) of a file Pillow can read whole and the model takes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                fmt, (width, height) = image.format or "", image.size
                # A multi-picture JPEG (phones, 3D cameras) is a JPEG to everybody else.
                fmt = "JPEG" if fmt == "MPO" else fmt
                image.verify()  # the structure (PNG's checksums); decoding comes later
    except UnidentifiedImageError as exc:
        if kind := _photo_format_pillow_cannot_read(path):
            raise ImageRejected(
                f"“{name}” is a {kind} image (a phone's photo format); the model takes JPEG "
                "or PNG only. Export or share it as JPEG and upload that."
            ) from exc
        raise _unreadable(name, "it is not an image file") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageRejected(f"“{name}” has too many pixels to be checked safely.") from exc
    except (OSError, SyntaxError, ValueError) as exc:  # what Pillow raises for damage
        raise _unreadable(name, "the file is damaged") from exc
    if problems := image_problems(name, fmt, width, height):
        raise ImageRejected(" ".join(problems))
    return fmt, width, height


def _save_thumbnail(source: Path, dest: Path, name: str) -> None:
    """A small JPEG for the pages, the right way up. Decoding the whole image here is also
    what finds a file cut short (verify() alone doesn't read JPEG data)."""
    try:
        with Image.open(source) as image:
            image.draft("RGB", (THUMBNAIL_SIDE * 2, THUMBNAIL_SIDE * 2))  # JPEG: decode small
            # Shrunk first, turned the right way up after: no full-size copy is made.
            image.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
            thumb = ImageOps.exif_transpose(image).convert("RGB")
            thumb.save(dest, "JPEG", quality=82)
    except (OSError, SyntaxError, ValueError) as exc:
        raise _unreadable(name, "the file is damaged or cut short") from exc

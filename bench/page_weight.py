#!/usr/bin/env python
"""What the main pages weigh, everything they load included; prints a Markdown table.

    .venv/bin/python bench/page_weight.py [--runs 25]

Builds a user with N finished runs whose posters are real JPEGs made by PyAV from real
videos (and a batch of 4 of them, when the batch page exists), in a fresh database with
static files collected as `make run` does. Then, for the Generate, run, history and batch
pages, fetches the HTML and every same-origin image, stylesheet, script and icon it names
(lazy images too; videos excluded, their `poster=` images counted), each once, and adds
up the bytes as they travel: the HTML as Django sends it (uncompressed: no GZipMiddleware),
static files as WhiteNoise serves them to a browser that accepts gzip, images as stored.

Twice: with posters of a test pattern (moving colour bars, what the test clips and so the
simulator's renders look like) and with photo-like frames (1/f noise, which JPEG
compresses about as well as a detailed photograph): real footage lies between the two.
"""

from __future__ import annotations

import argparse
import atexit
import gzip
import os
import re
import shutil
import sys
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from fractions import Fraction
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
TMP = Path(tempfile.mkdtemp(prefix="bench-weight-"))
atexit.register(shutil.rmtree, TMP, ignore_errors=True)
os.environ["VAR_DIR"] = str(TMP / "var")
os.environ["DJANGO_SETTINGS_MODULE"] = "playground.settings"
os.environ["DEBUG"] = "false"
os.environ.pop("AIGATEWAY_API_KEY", None)

import av  # noqa: E402
import django  # noqa: E402
import numpy as np  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

# Collected here, as `make run` does into ./staticfiles (set before anything reads it).
settings.STATIC_ROOT = TMP / "static"

from django.contrib.auth.models import User  # noqa: E402
from django.core.files.uploadedfile import SimpleUploadedFile  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.test import Client  # noqa: E402
from django.urls import NoReverseMatch, reverse  # noqa: E402
from django.utils import timezone  # noqa: E402
from PIL import Image  # noqa: E402

from playground.lib import media, video  # noqa: E402
from playground.runs.images import store_image  # noqa: E402
from playground.runs.models import Batch, Reference, Run  # noqa: E402
from tests.videos import make_video  # noqa: E402

KB = 1024
IMAGES = 8  # reference images in the user's library
# As long as people write them: longer than the 90 characters a history row shows.
PROMPT = (
    "@Video1 shot {}: the same street at golden hour, a slow push-in, warm light on wet "
    "cobblestones, people walking past in soft focus"
)


# --- Test data ------------------------------------------------------------------------------


def photo_like(width: int, height: int, seed: int) -> np.ndarray:
    """An RGB image with the 1/f spectrum of natural photographs (and a little grain)."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(height)[:, None]
    fx = np.fft.rfftfreq(width)[None, :]
    freq = np.sqrt(fx**2 + fy**2)
    freq[0, 0] = 1

    def layer() -> np.ndarray:
        spectrum = (rng.normal(size=freq.shape) + 1j * rng.normal(size=freq.shape)) / freq**1.2
        spectrum[0, 0] = 0
        img = np.fft.irfft2(spectrum, s=(height, width))
        return (img - img.mean()) / img.std()

    luma, red, blue = layer(), layer(), layer()
    rgb = np.stack([luma + 0.3 * red, luma - 0.2 * red + 0.2 * blue, luma - 0.3 * blue], -1)
    rgb = 120 + 40 * rgb + rng.normal(0, 3, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def make_pan(path: Path, *, width: int = 854, height: int = 480, frames: int = 72) -> Path:
    """A 3 s clip panning across a photo-like scene, as a camera would."""
    scene = photo_like(width + frames * 6, height + frames * 2, seed=7)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=24)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(scene[i * 2 : i * 2 + height, i * 6 : i * 6 + width]),
                format="rgb24",
            )
            frame.pts, frame.time_base = i, Fraction(1, 24)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def posters(clip: Path, folder: Path, count: int) -> list[Path]:
    """`count` different posters, from frames spread over the clip, as the app writes them."""
    with av.open(str(clip)) as container:
        frames = list(container.decode(video=0))
    made = []
    for i in range(count):
        dest = folder / f"poster-{i}.jpg"
        video.write_jpeg(frames[(i * 3) % len(frames)], dest)
        made.append(dest)
    return made


def make_user(name: str, clip: Path, count: int) -> tuple[Client, Run, Batch | None]:
    user = User.objects.create_user(name, password="bench-pass-123")
    work = TMP / name
    work.mkdir()
    shots = posters(clip, work, count + 1)
    code = uuid.uuid4()
    media.save(f"references/{code}/original.mp4", clip)
    media.save(f"references/{code}/poster.jpg", shots[-1])
    with av.open(str(clip)) as container:
        stream = container.streams.video[0]
        width, height = stream.width, stream.height
    reference = Reference.objects.create(
        code=code, user=user, name=clip.name, file=f"references/{code}/original.mp4",
        poster=f"references/{code}/poster.jpg", format_name=video.MP4_FAMILY, codec="h264",
        width=width, height=height, fps=24, duration=3, size=clip.stat().st_size,
    )  # fmt: skip
    now = timezone.now()
    runs = []
    for i in range(count):
        run_code = uuid.uuid4()
        media.save(f"results/{run_code}.mp4", clip)
        media.save(f"results/{run_code}.jpg", shots[i])
        runs.append(
            Run.objects.create(
                code=run_code,
                user=user,
                reference=reference,
                idempotency_key=uuid.uuid4(),
                prompt=PROMPT.format(i),
                status="completed",
                duration=3,
                estimated_cost_micros=504_000,
                billed_cost_micros=504_000,
                billed_seconds=3,
                cost_source="computed",
                simulated=settings.SIMULATOR_ENABLED,
                result=f"results/{run_code}.mp4",
                poster=f"results/{run_code}.jpg",
                result_width=width,
                result_height=height,
                result_fps=24,
                submitted_at=now,
                finished_at=now,
                created_at=now - timedelta(hours=i * 7),
            )
        )
    # A library of reference images, as the Generate page's picker shows them.
    for i in range(IMAGES):
        photo = work / f"photo-{i}.jpg"
        Image.fromarray(photo_like(1200, 800, seed=100 + i)).save(photo, quality=85)
        store_image(user, SimpleUploadedFile(photo.name, photo.read_bytes(), "image/jpeg"))
    batch = None
    if has_url("batch", uuid.uuid4()):
        batch = Batch.objects.create(user=user, idempotency_key=uuid.uuid4())
        Run.objects.filter(pk__in=[run.pk for run in runs[:4]]).update(batch=batch)
    client = Client(HTTP_HOST="localhost")
    client.force_login(user)
    return client, runs[0], batch


def has_url(name: str, *args: object) -> bool:
    try:
        reverse(name, args=args)
    except NoReverseMatch:
        return False
    return True


# --- Measuring ------------------------------------------------------------------------------


class Resources(HTMLParser):
    """The same-origin URLs a page makes the browser fetch (video sources left out)."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: dict[str, str] = {}  # url -> kind

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "img" and found.get("src"):
            self.add(found["src"], "image")
        elif tag == "video" and found.get("poster"):
            self.add(found["poster"], "image")
        elif tag == "script" and found.get("src"):
            self.add(found["src"], "static")
        elif tag == "link" and found.get("href"):
            rel = (found.get("rel") or "").split()
            if {"stylesheet", "icon", "preload", "modulepreload"} & set(rel):
                self.add(found["href"], "static")

    def add(self, url: str | None, kind: str) -> None:
        if url and not urlsplit(url).netloc:  # same origin only
            self.urls.setdefault(url, kind)


@dataclass
class Weight:
    html: int = 0
    html_gzipped: int = 0
    static: int = 0
    images: int = 0
    image_count: int = 0
    full_posters: int = 0  # what the thumbnails would weigh as the 640 px posters
    missing: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.html + self.static + self.images


def body(response) -> bytes:  # type: ignore[no-untyped-def]
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def weigh(client: Client, url: str) -> Weight:
    headers = {"Accept-Encoding": "gzip"}
    page = client.get(url, headers=headers)
    assert page.status_code == 200, (url, page.status_code)
    html = body(page)
    weight = Weight(html=len(html), html_gzipped=len(gzip.compress(html)))
    parser = Resources()
    parser.feed(html.decode())
    urls = dict(parser.urls)
    for resource in list(urls):
        if resource.endswith(".css"):  # what the stylesheet itself loads
            css = gzip.decompress(body(client.get(resource, headers=headers)))
            for ref in re.findall(r"url\(['\"]?([^'\")]+)", css.decode(errors="replace")):
                if not ref.startswith("data:"):
                    urls.setdefault(ref, "static")
    for resource, kind in urls.items():
        response = client.get(resource, headers=headers)
        if response.status_code != 200:
            weight.missing.append(f"{resource} ({response.status_code})")
            continue
        size = len(body(response))
        if kind == "image":
            weight.images += size
            weight.image_count += 1
            if resource.endswith("/thumb.jpg"):
                poster = client.get(resource.replace("/thumb.jpg", "/poster.jpg"))
                weight.full_posters += len(body(poster))
            else:
                weight.full_posters += size
        else:
            weight.static += size
    return weight


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=25)
    args = parser.parse_args()

    call_command("migrate", verbosity=0)
    call_command("collectstatic", interactive=False, verbosity=0)
    clips = TMP / "clips"
    clips.mkdir()
    contents = {
        "test pattern": make_video(clips / "pattern.mp4", width=854, height=480, seconds=3),
        "photo-like": make_pan(clips / "photo.mp4"),
    }
    print(f"{args.runs} finished runs per user; KB = 1,024 bytes")
    print()
    print("| Posters | Page | HTML | static (gzip) | images | total | images as 640 px posters |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for index, (content, clip) in enumerate(contents.items()):
        client, run, batch = make_user(f"user{index}", clip, args.runs)
        pages = {
            "Generate": reverse("generate"),
            "Run": run.get_absolute_url(),
            "History": reverse("history"),
        }
        if batch is not None:
            pages["Batch (4 runs)"] = batch.get_absolute_url()
        for name, url in pages.items():
            w = weigh(client, url)
            print(
                f"| {content} | {name} | {w.html / KB:.1f} (gzip {w.html_gzipped / KB:.1f}) "
                f"| {w.static / KB:.1f} | {w.images / KB:.1f} ({w.image_count}) "
                f"| **{w.total / KB:.0f}** | {(w.total - w.images + w.full_posters) / KB:.0f} |"
            )
            if w.missing:
                print(f"|   | missing: {', '.join(w.missing)} | | | | | |")


if __name__ == "__main__":
    main()

"""Reference images (@Image1 … @Image4): what the form refuses and keeps, what the provider
is sent, and what the simulator does with them."""

from __future__ import annotations

import hashlib
import html
import io
import json
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import av
import httpx
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile, UploadedFile
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from playground import kling
from playground.gateway import gateway_from_settings
from playground.lib import media
from playground.runs import steps
from playground.runs.forms import IMAGE_PICKER_SIZE, GenerateForm
from playground.runs.images import ImageRejected, image_problems, store_image
from playground.runs.models import Reference, Run, RunImage
from playground.runs.references import reference_for_token, reference_for_url, signed_reference_url
from playground.runs.tracker import track_until_idle
from playground.simulator import store
from tests.builders import (
    ScriptedProvider,
    generate_data,
    make_reference,
    make_run,
    served_bytes,
    stored_bytes,
    stored_names,
)

pytestmark = pytest.mark.django_db
live = pytest.mark.django_db(transaction=True)

RED = (230, 20, 20)


# --- files made with Pillow, once per module ----------------------------------------------


def _image(path: Path, width: int, height: int, colour: tuple[int, int, int] = RED) -> Path:
    Image.new("RGB", (width, height), colour).save(path)
    return path


def _heic(path: Path) -> Path:
    """The first bytes of an iPhone photo (an ISO box naming the HEIC brand), then data."""
    path.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 400)
    return path


def _text(path: Path) -> Path:
    path.write_text("milk, eggs, bread\n" * 50)
    return path


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "square.png": lambda d: _image(d / "square.png", 400, 400),
    "wide.jpg": lambda d: _image(d / "wide.jpg", 600, 400, (20, 200, 60)),
    "blue.png": lambda d: _image(d / "blue.png", 500, 500, (30, 40, 220)),
    "notes.png": lambda d: _text(d / "notes.png"),
    "photo.heic": lambda d: _heic(d / "photo.heic"),
    "small.png": lambda d: _image(d / "small.png", 200, 640),
    "tall.png": lambda d: _image(d / "tall.png", 300, 1200),
    "anim.gif": lambda d: _image(d / "anim.gif", 400, 400),
    # A few KB on disk, 31 megapixels decoded: refused before anything decodes it whole.
    "vast.png": lambda d: _image(d / "vast.png", 6400, 4800),
}


@pytest.fixture(scope="module")
def image_file(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    folder = tmp_path_factory.mktemp("images")
    cache: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in cache:
            cache[name] = BUILDERS[name](folder)
        return cache[name]

    return get


def upload(path: Path, name: str | None = None) -> UploadedFile:
    return UploadedFile(
        io.BytesIO(path.read_bytes()), name=name or path.name, size=path.stat().st_size
    )


def library_image(user, path: Path) -> Reference:
    return store_image(user, upload(path))


def media_files() -> list[str]:
    return stored_names()


def checked_images(content: str) -> list[str]:
    """The codes of the ticked library images, in page order."""
    return re.findall(r'name="images" value="([0-9a-f-]{36})" checked', content)


@pytest.fixture
def video(owner) -> Reference:
    """A library video to pick, so a post needs no upload (the form only picks it)."""
    return make_reference(owner)


# --- what the form refuses ------------------------------------------------------------------

REJECTIONS = [
    ("notes.png", ["“notes.png” can’t be used: it is not an image file", "JPEG or PNG"]),
    ("small.png", ["“small.png” is 200×640 px; each side must be at least 300 px."]),
    ("tall.png", ["“tall.png” is 300×1200 px, an aspect ratio of 1:4", "1:2.5 and 2.5:1"]),
    ("anim.gif", ["“anim.gif” is a GIF image; the model takes JPEG or PNG only."]),
    ("photo.heic", ["“photo.heic” is a HEIC image (a phone's photo format)", "as JPEG"]),
    ("vast.png", ["“vast.png” is 6400×4800 px (31 megapixels); images over 24 megapixels"]),
]


@pytest.mark.parametrize(("name", "fragments"), REJECTIONS, ids=[n for n, _ in REJECTIONS])
def test_it_refuses_an_image_the_model_would_refuse_and_keeps_nothing(
    owner_client, video, image_file, name, fragments
):
    data = generate_data(reference=str(video.code), reference_images=[upload(image_file(name))])
    response = owner_client.post(reverse("generate"), data)

    assert response.status_code == 200
    errors = response.context["form"].errors["reference_images"]
    assert len(errors) == 1
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    content = response.content.decode()
    block = content[content.index("data-images") : content.index("</fieldset>")]
    assert html.escape(errors[0]) in block  # said at the images, not elsewhere
    assert not Reference.objects.filter(kind="image").exists()
    assert media_files() == []
    assert Run.objects.count() == 0


def test_it_names_the_size_limit_and_the_size_of_an_image_over_10_mb(owner):
    big = UploadedFile(io.BytesIO(b"\0" * 16), name="huge.png", size=11 * 1024 * 1024)
    with pytest.raises(ImageRejected) as refused:
        store_image(owner, big)
    assert str(refused.value) == "“huge.png” is 11 MB; each image may be at most 10 MB."
    assert media_files() == []


def test_it_tells_the_sizes_apart_when_an_image_is_just_over_the_limit(owner):
    size = kling.IMAGE_MAX_BYTES + 20_000  # both round to "10 MB"
    big = UploadedFile(io.BytesIO(b"\0" * 16), name="edge.png", size=size)
    with pytest.raises(ImageRejected) as refused:
        store_image(owner, big)
    assert str(refused.value) == (
        f"“edge.png” is {size:,} bytes; each image may be at most 10 MB "
        f"({kling.IMAGE_MAX_BYTES:,} bytes)."
    )


@pytest.mark.parametrize(
    ("width", "height", "ratio"),
    [(300, 1200, "1:4"), (1000, 2505, "1:2.505"), (2510, 1000, "2.51:1")],
)
def test_it_names_an_aspect_ratio_just_past_the_limit_with_enough_digits(width, height, ratio):
    (problem,) = image_problems("x.png", "PNG", width, height)
    assert f"an aspect ratio of {ratio};" in problem


def test_it_refuses_a_fifth_image_and_stores_none_of_the_uploads(
    owner_client, owner, video, image_file
):
    picked = [library_image(owner, image_file("square.png")) for _ in range(3)]
    data = generate_data(
        reference=str(video.code),
        images=[str(image.code) for image in picked],
        reference_images=[upload(image_file("wide.jpg")), upload(image_file("blue.png"))],
    )
    response = owner_client.post(reverse("generate"), data)

    assert response.context["form"].errors["reference_images"] == [
        "A run takes at most 4 images; you attached 5."
    ]
    assert Reference.objects.filter(kind="image").count() == 3  # no upload was kept
    assert Run.objects.count() == 0


def test_it_keeps_stored_images_in_order_when_another_field_fails(
    owner_client, owner, video, image_file
):
    earlier = library_image(owner, image_file("blue.png"))
    first = generate_data(
        prompt="   ",
        reference=str(video.code),
        images=[str(earlier.code)],
        reference_images=[upload(image_file("square.png")), upload(image_file("wide.jpg"))],
    )
    response = owner_client.post(reverse("generate"), first)

    form = response.context["form"]
    assert "prompt" in form.errors and "reference_images" not in form.errors
    square, wide = Reference.objects.filter(kind="image").exclude(pk=earlier.pk).order_by("pk")
    assert (square.name, square.format_name, square.codec) == ("square.png", "PNG", "png")
    assert (wide.width, wide.height, wide.format_name, wide.fps, wide.duration) == (
        600,
        400,
        "JPEG",
        0,
        0,
    )
    assert stored_bytes(wide.file.name) == image_file("wide.jpg").read_bytes()  # as sent
    with Image.open(io.BytesIO(stored_bytes(square.poster.name))) as thumb:
        assert thumb.format == "JPEG" and max(thumb.size) <= 160
    assert form.stored_images == [earlier, square, wide]
    # The page comes back with all three ticked, @Image1 first, so nothing is sent twice.
    content = response.content.decode()
    codes = [str(image.code) for image in (earlier, square, wide)]
    assert checked_images(content) == codes
    assert "@Image3" in content

    second = generate_data(
        prompt="@Video1 with @Image1, @Image2 and @Image3",
        reference=str(video.code),
        images=checked_images(content),
        idempotency_key=first["idempotency_key"],
    )
    response = owner_client.post(reverse("generate"), second)

    run = Run.objects.get()
    assert response.status_code == 302
    assert run.image_references == [earlier, square, wide]
    assert list(RunImage.objects.filter(run=run).values_list("position", flat=True)) == [1, 2, 3]
    assert Reference.objects.filter(kind="image").count() == 3


@pytest.mark.parametrize(
    ("prompt", "attached", "message"),
    [
        ("@Video1 beside @Image3", 2, "The prompt cites @Image3, but only 2 images are attached."),
        ("@Video1 and @image2", 1, "The prompt cites @Image2, but only 1 image is attached."),
        ("@Video1 with @Image1", 0, "The prompt cites @Image1, but no images are attached."),
    ],
    ids=["two", "one", "none"],
)
def test_it_refuses_a_prompt_citing_an_image_that_is_not_attached(
    owner_client, owner, video, image_file, prompt, attached, message
):
    images = [library_image(owner, image_file("square.png")) for _ in range(attached)]
    data = generate_data(
        prompt=prompt, reference=str(video.code), images=[str(i.code) for i in images]
    )
    response = owner_client.post(reverse("generate"), data)

    assert response.context["form"].errors["prompt"] == [message]
    assert html.escape(message) in response.content.decode()
    assert Run.objects.count() == 0


def test_it_does_not_offer_or_accept_another_users_image(
    owner_client, stranger_client, owner, stranger, image_file
):
    theirs = library_image(owner, image_file("square.png"))
    mine = make_reference(stranger)

    page = stranger_client.get(reverse("generate")).content.decode()
    assert str(theirs.code) not in page
    response = stranger_client.post(
        reverse("generate"), generate_data(reference=str(mine.code), images=[str(theirs.code)])
    )
    assert "images" in response.context["form"].errors
    assert not Run.objects.filter(user=stranger).exists()
    for name in ("reference_image", "reference_poster"):
        assert stranger_client.get(reverse(name, args=[theirs.code])).status_code == 404
        answer = owner_client.get(reverse(name, args=[theirs.code])).status_code
        assert answer == (200 if media.is_local() else 302)  # with a bucket, a redirect to it
    full = owner_client.get(reverse("reference_image", args=[theirs.code]))
    if full.status_code == 302:  # to the bucket, signed to answer with the type
        assert "response-content-type=image%2Fpng" in full["Location"]
    else:
        assert full["Content-Type"] == "image/png"
    assert served_bytes(full) == image_file("square.png").read_bytes()


def test_it_offers_only_usable_videos_as_the_reference(owner, image_file):
    good = make_reference(owner)
    make_reference(owner, problems="It is 12 s long; the model takes 3–10.05 s.")
    image = library_image(owner, image_file("square.png"))

    form = GenerateForm(user=owner)
    assert list(form.fields["reference"].queryset) == [good]
    assert list(form.fields["images"].queryset) == [image]


def test_it_prefills_the_images_of_an_earlier_run_in_their_order(owner_client, owner, image_file):
    first, second = (library_image(owner, image_file(n)) for n in ("square.png", "blue.png"))
    run = make_run(owner, status="failed", prompt="@Video1 with @Image1 and @Image2")
    RunImage.objects.create(run=run, reference=second, position=1)
    RunImage.objects.create(run=run, reference=first, position=2)

    content = owner_client.get(reverse("generate"), {"from": str(run.code)}).content.decode()
    assert checked_images(content) == [str(second.code), str(first.code)]


def test_the_picker_shows_the_newest_images_as_thumbnails_and_always_the_chosen(
    owner_client, owner, image_file
):
    oldest = library_image(owner, image_file("square.png"))
    for _ in range(IMAGE_PICKER_SIZE + 5):
        library_image(owner, image_file("blue.png"))
    run = make_run(owner, status="failed", prompt="@Video1 with @Image1")
    RunImage.objects.create(run=run, reference=oldest, position=1)

    content = owner_client.get(reverse("generate"), {"from": str(run.code)}).content.decode()
    picks = re.findall(r'name="images" value="([0-9a-f-]{36})"', content)
    assert len(picks) == IMAGE_PICKER_SIZE and picks[0] == str(oldest.code)
    assert checked_images(content) == [str(oldest.code)]
    thumb = reverse("reference_thumb", args=[oldest.code])
    assert f'<img src="{thumb}" alt="square.png" width="72" height="72" loading="lazy"' in content
    assert "/poster.jpg" not in content.split('class="image-picker"')[1].split("</div>")[0]


def test_it_offers_recent_distinct_prompts(owner_client, owner, stranger):
    reference = make_reference(owner)
    for prompt in ("@Video1 in fog", "@Video1 at dawn", "@Video1 in fog"):
        make_run(owner, reference=reference, prompt=prompt)
    make_run(stranger, prompt="@Video1 someone else's idea")

    response = owner_client.get(reverse("generate"))
    assert response.context["recent_prompts"] == ["@Video1 in fog", "@Video1 at dawn"]
    assert "someone else" not in response.content.decode()


# --- the library ------------------------------------------------------------------------------


def test_it_lists_images_and_deletes_one_only_when_no_run_cites_it(owner_client, owner, image_file):
    image = library_image(owner, image_file("square.png"))
    run = make_run(owner, status="completed")
    RunImage.objects.create(run=run, reference=image, position=1)

    page = owner_client.get(reverse("references")).content.decode()
    images = page[page.index('id="images"') :]
    assert "square.png" in images and "Used by 1 run" in images

    response = owner_client.post(reverse("reference_delete", args=[image.code]), follow=True)
    assert "is used by 1 run" in response.content.decode()
    assert Reference.objects.filter(pk=image.pk).exists()

    run.discard()  # a deleted run cites nothing any more
    owner_client.post(reverse("reference_delete", args=[image.code]))
    assert not Reference.objects.filter(pk=image.pk).exists()
    assert media_files() == []


# --- what the provider is sent ----------------------------------------------------------------


def test_it_sends_signed_image_urls_the_download_view_serves(
    client, owner, settings, image_file, local_files
):
    """On local files; with a bucket, the provider fetches from it (tests/test_storage.py)."""
    images = [library_image(owner, image_file(n)) for n in ("wide.jpg", "square.png")]
    run = make_run(owner, status="pending", next_poll_at=timezone.now())
    for position, image in enumerate(images, start=1):
        RunImage.objects.create(run=run, reference=image, position=position)
    bodies: list[dict] = []

    def accept(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(202, json={"id": "job_1", "status": "queued"})

    gateway = ScriptedProvider({("POST", "/v1/videos/generations"): accept}).gateway()
    (claimed,) = Run.claim_due(10, "tests")
    steps.submit(claimed, gateway)

    urls = bodies[0]["image_urls"]
    assert [reference_for_token(url.rsplit("/", 1)[1]) for url in urls] == images
    for url, image, kind in zip(urls, images, ("image/jpeg", "image/png"), strict=True):
        response = client.get(url.removeprefix(f"http://127.0.0.1:{settings.PORT}"))
        assert response.status_code == 200 and response["Content-Type"] == kind
        assert b"".join(response.streaming_content) == stored_bytes(image.file.name)
    token = urls[0].rsplit("/", 1)[1]
    assert client.get(reverse("reference_download", args=[token[:-2] + "xx"])).status_code == 404
    settings.REFERENCE_URL_MAX_AGE_SECONDS = -1  # every token has expired
    assert client.get(reverse("reference_download", args=[token])).status_code == 404


def test_it_sends_no_image_urls_for_a_run_without_images(owner):
    bodies: list[dict] = []

    def accept(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(202, json={"id": "job_1", "status": "queued"})

    make_run(owner, status="pending", next_poll_at=timezone.now())
    gateway = ScriptedProvider({("POST", "/v1/videos/generations"): accept}).gateway()
    (claimed,) = Run.claim_due(10, "tests")
    steps.submit(claimed, gateway)
    assert "image_urls" not in bodies[0]


def test_it_loads_the_images_of_claimed_runs_without_a_query_per_run(
    owner, image_file, django_assert_num_queries
):
    image = library_image(owner, image_file("square.png"))
    for _ in range(3):
        RunImage.objects.create(
            run=make_run(owner, status="pending", next_poll_at=timezone.now()),
            reference=image,
            position=1,
        )

    claimed = Run.claim_due(10, "tests")
    with django_assert_num_queries(0):
        assert [run.image_references for run in claimed] == [[image]] * 3


# --- the simulator ----------------------------------------------------------------------------


@pytest.fixture
def api(gateway, settings):
    store.clear_faults()
    headers = {"Authorization": f"Bearer {settings.SIMULATOR_API_KEY}"}
    with httpx.Client(base_url=gateway.url + "/sim", headers=headers, timeout=30) as client:
        yield client


@live
def test_the_simulator_refuses_image_urls_it_must_not_fetch(api, owner):
    own = signed_reference_url(make_reference(owner))
    body = {
        "model": kling.MODEL_ID,
        "prompt": "@Video1 with @Image1",
        "duration": 3,
        "aspect_ratio": "auto",
        "video_url": own,
    }
    for image_urls in (own, ["https://images.example.com/cat.png"], [own] * 5, [42]):
        response = api.post("/v1/videos/generations", json={**body, "image_urls": image_urls})
        assert response.status_code == 400, (image_urls, response.text)
        assert response.json()["error"]["param"] == "image_urls"
    assert store.job_ids() == []
    assert api.post("/v1/videos/generations", json={**body, "image_urls": [own]}).status_code == 202


@live
def test_the_simulator_fails_a_job_whose_image_it_cannot_fetch_or_read(
    gateway, owner, clip, image_file
):
    video_url = signed_reference_url(make_reference(owner, clip))
    gone = library_image(owner, image_file("square.png"))
    gone_url = signed_reference_url(gone)
    default_storage.delete(gone.file.name)  # its URL answers 404 now
    client = gateway_from_settings(attempts=1)
    try:
        jobs = [
            client.submit(
                prompt="@Video1 with @Image1",
                duration=3,
                aspect_ratio="auto",
                video_url=video_url,
                keep_audio=False,
                idempotency_key=str(uuid.uuid4()),
                image_urls=[url],
            )
            for url in (gone_url, video_url)  # a video is not an image
        ]
        deadline = time.monotonic() + 20
        while not all(client.get_job(j.id).is_final for j in jobs):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        missing, not_image = (client.get_job(j.id) for j in jobs)
    finally:
        client.close()
    assert missing.status == "failed"
    # A bucket may answer a missing key with 403, as S3 does to a signer who may not list it.
    statuses = ["404"] if media.is_local() else ["403", "404"]
    assert missing.error_message in [
        f"Could not download reference image 1 (HTTP {status})." for status in statuses
    ]
    assert not_image.status == "failed"
    assert "Reference image 1" in not_image.error_message
    assert "JPEG or PNG" in not_image.error_message
    assert list((store.root() / "inputs").iterdir()) == []  # nothing left behind


@live
def test_a_run_with_an_image_shows_it_in_the_corner_of_the_result(
    gateway, owner_client, good_video, image_file
):
    data = generate_data(
        good_video,
        prompt="@Video1 with @Image1 in the corner",
        reference_images=[SimpleUploadedFile("red.png", image_file("square.png").read_bytes())],
    )
    assert owner_client.post(reverse("generate"), data).status_code == 302
    run = Run.objects.get()
    (image,) = run.image_references

    track_until_idle(timeout=60)
    run.refresh_from_db()
    assert run.status == "completed", run.error_message
    job = store.SimJob.load(run.provider_job_id)
    assert [reference_for_url(url) for url in job.image_urls] == [image]
    # The simulator fetched the very file uploaded, and dropped it after rendering.
    assert job.image_sha256 == [hashlib.sha256(image_file("square.png").read_bytes()).hexdigest()]
    assert list((store.root() / "inputs").iterdir()) == []

    with media.local_copy(run.result.name) as path, av.open(str(path)) as result:
        frames = [f.to_ndarray(format="rgb24") for f in result.decode(video=0)]
    assert frames[0].shape == (1080, 1080, 3)
    # Corner 1 (top left, under the SIMULATED strip) holds the image in the middle half only.
    start, middle = frames[0][170, 134].astype(int), frames[len(frames) // 2][170, 134].astype(int)
    assert abs(middle - RED).max() < 40, middle
    assert abs(start - RED).max() > 80, start

    page = owner_client.get(run.get_absolute_url()).content.decode()
    side = page[page.index('id="run-side"') :]
    assert reverse("reference_image", args=[image.code]) in side and "@Image1" in side

"""Taking uploads in: refused while they stream, never parsed for a logged-out client, the
header checked before the whole file is walked, and each user's storage quota."""

from __future__ import annotations

import html
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage, storages
from django.core.files.uploadhandler import MemoryFileUploadHandler, TemporaryFileUploadHandler
from django.http.multipartparser import MultiPartParser
from django.test import Client
from django.urls import reverse

from playground import kling
from playground.lib import video
from playground.lib.media import size_label
from playground.lib.uploads import BODY_MARGIN_BYTES
from playground.runs.forms import GenerateForm
from playground.runs.models import Reference, Run
from playground.runs.references import storage_use
from tests.builders import generate_data, make_reference, make_run, stored_bytes, stored_names
from tests.videos import make_video

pytestmark = pytest.mark.django_db


@pytest.fixture
def stored(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Bytes Django's own handlers stored, in memory and on disk, and bodies parsed."""
    counts = {"memory": 0, "disk": 0, "parsed": 0}

    def spy(cls: type, where: str, stores: Callable[[Any], bool]) -> None:
        original = cls.receive_data_chunk

        def receive_data_chunk(self: Any, raw_data: bytes, start: int) -> bytes | None:
            if stores(self):
                counts[where] += len(raw_data)
            return original(self, raw_data, start)

        monkeypatch.setattr(cls, "receive_data_chunk", receive_data_chunk)

    spy(MemoryFileUploadHandler, "memory", lambda handler: handler.activated)
    spy(TemporaryFileUploadHandler, "disk", lambda handler: True)
    parse = MultiPartParser.parse

    def counted_parse(self: MultiPartParser) -> Any:
        counts["parsed"] += 1
        return parse(self)

    monkeypatch.setattr(MultiPartParser, "parse", counted_parse)
    return counts


@pytest.fixture(params=["memory", "disk"])
def storage(request: pytest.FixtureRequest, settings: Any, tmp_path: Path) -> str:
    """Where Django would keep the upload: in memory (under 2 MB) or a temporary file."""
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "upload-temp")
    os.mkdir(settings.FILE_UPLOAD_TEMP_DIR)
    if request.param == "disk":
        settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 0
    return request.param


def temp_files() -> list[str]:
    return os.listdir(django_settings.FILE_UPLOAD_TEMP_DIR)


def media_files() -> list[str]:
    return stored_names()


def selected_option(content: str, select_name: str) -> str | None:
    match = re.search(rf'<select name="{select_name}"[^>]*>(.*?)</select>', content, re.S)
    assert match, f"no <select name={select_name}> in the page"
    chosen = re.search(r'<option value="([^"]*)"[^>]*\bselected\b', match.group(1))
    return chosen.group(1) if chosen else None


def assert_refused_and_kept_the_fields(response: Any, message: str) -> None:
    assert response.status_code == 200
    form = response.context["form"]
    assert form.errors["reference_video"] == [message], form.errors
    assert not form.non_field_errors() and "prompt" not in form.errors
    content = response.content.decode()
    dropzone = content[content.index("data-dropzone") : content.index('<div class="row">')]
    assert html.escape(message) in dropzone  # said at the reference field
    assert "@Video1 in the rain at dusk" in content  # what was typed is still there
    assert selected_option(content, "duration") == "7"
    assert selected_option(content, "aspect_ratio") == "9:16"
    assert Reference.objects.count() == 0 and Run.objects.count() == 0
    assert media_files() == []
    assert temp_files() == []


TYPED = {"prompt": "@Video1 in the rain at dusk", "duration": 7, "aspect_ratio": "9:16"}


# --- Logged out: nothing is parsed ---------------------------------------------------------


def test_it_sends_a_logged_out_upload_to_log_in_without_reading_it(db, good_video, stored):
    client = Client(enforce_csrf_checks=True)
    client.get(reverse("login"))  # a CSRF cookie and token, as any visitor can get
    token = client.cookies["csrftoken"].value

    response = client.post(
        reverse("generate"), generate_data(good_video, csrfmiddlewaretoken=token)
    )

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next=/"
    assert stored == {"memory": 0, "disk": 0, "parsed": 0}


def test_it_still_checks_csrf_for_a_signed_in_upload(owner, good_video):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)

    response = client.post(reverse("generate"), generate_data(good_video))

    assert response.status_code == 403
    assert Reference.objects.count() == 0


# --- Over the size limit: refused while it streams -------------------------------------------


def test_it_refuses_an_upload_declared_too_large_before_storing_any_of_it(
    owner_client, good_video, stored, storage, monkeypatch
):
    monkeypatch.setattr(kling, "REFERENCE_MAX_BYTES", 100_000)
    size = good_video.stat().st_size
    assert size > 100_000 + BODY_MARGIN_BYTES  # the Content-Length says so up front

    response = owner_client.post(reverse("generate"), generate_data(good_video, **TYPED))

    assert_refused_and_kept_the_fields(
        response, f"The file is {size_label(size)}; the limit is 98 KB."
    )
    assert stored["memory"] == stored["disk"] == 0  # not one byte of it was kept


def test_it_refuses_an_upload_once_it_streams_past_the_limit_and_deletes_what_was_stored(
    owner_client, good_video, stored, storage, monkeypatch
):
    size = good_video.stat().st_size
    limit = size - 1  # one byte over: the body's length alone does not give it away
    monkeypatch.setattr(kling, "REFERENCE_MAX_BYTES", limit)
    seen_by_form: list[list[str]] = []
    clean = GenerateForm.clean_reference_video

    def clean_reference_video(form: GenerateForm) -> Any:
        seen_by_form.append(temp_files())
        return clean(form)

    monkeypatch.setattr(GenerateForm, "clean_reference_video", clean_reference_video)

    response = owner_client.post(reverse("generate"), generate_data(good_video, **TYPED))

    assert_refused_and_kept_the_fields(
        response,
        # One byte over reads "1.6 MB" both ways when rounded, so the bytes are said.
        f"The file is {size:,} bytes; the limit is {size_label(limit)} ({limit:,} bytes).",
    )
    kept = stored[storage]
    assert 0 < kept <= limit  # it streamed in up to the limit, and no further
    assert seen_by_form == [[]]  # the partial file was gone before the form even looked


def test_it_takes_an_upload_exactly_at_the_limit(
    owner_client, good_video, stored, storage, monkeypatch
):
    size = good_video.stat().st_size
    monkeypatch.setattr(kling, "REFERENCE_MAX_BYTES", size)

    response = owner_client.post(reverse("generate"), generate_data(good_video))

    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    assert stored_bytes(run.reference.file.name) == good_video.read_bytes()
    assert stored[storage] == size
    assert temp_files() == []


# --- The header first, then the whole file ---------------------------------------------------


def test_it_refuses_a_file_on_its_header_without_walking_every_packet(
    owner_client, tmp_path, monkeypatch
):
    small = make_video(tmp_path / "small.mp4", width=640, height=480, seconds=1)

    def walk(*args: object) -> None:
        pytest.fail("the whole file was walked though its header already breaks the limits")

    monkeypatch.setattr(video, "_check_complete", walk)

    response = owner_client.post(reverse("generate"), generate_data(small))

    assert response.status_code == 200
    [message] = response.context["form"].errors["reference_video"]
    assert "1.00 s long" in message and "640×480;" in message
    assert Reference.objects.count() == 0 and media_files() == []


def test_it_walks_every_packet_of_a_file_whose_header_passes(owner_client, good_video, monkeypatch):
    walks: list[float] = []
    check = video._check_complete

    def walk(container: Any, stream: Any, duration: float) -> None:
        walks.append(duration)
        check(container, stream, duration)

    monkeypatch.setattr(video, "_check_complete", walk)

    owner_client.post(reverse("generate"), generate_data(good_video))

    assert walks == [3.5]
    assert Run.objects.count() == 1


# --- The storage quota -----------------------------------------------------------------------


def test_it_refuses_an_upload_that_would_pass_the_storage_quota(
    owner_client, owner, good_video, settings
):
    settings.USER_STORAGE_QUOTA_MB = 2
    make_reference(owner, size=900_000)  # 879 KB already used
    size = good_video.stat().st_size
    assert 900_000 + size > 2 * 1024 * 1024

    response = owner_client.post(reverse("generate"), generate_data(good_video))

    assert response.status_code == 200
    [message] = response.context["form"].errors["reference_video"]
    assert f"“good.mp4” ({size_label(size)})" in message
    assert "you are using 879 KB of 2 MB" in message
    assert html.escape(message) in response.content.decode()
    assert Reference.objects.count() == 1 and Run.objects.count() == 0


def test_it_takes_an_upload_that_fits_the_quota(owner_client, owner, good_video, settings):
    settings.USER_STORAGE_QUOTA_MB = 3
    make_reference(owner, size=900_000)

    response = owner_client.post(reverse("generate"), generate_data(good_video))

    assert response.status_code == 302
    assert Reference.objects.count() == 2 and Run.objects.count() == 1


def test_it_counts_references_previews_and_results_towards_the_quota(
    owner: User, stranger: User, clip
):
    reference = make_reference(owner, clip)
    preview = f"references/{reference.code}/preview.mp4"
    default_storage.save(preview, ContentFile(b"\0" * 12_345))
    reference.preview, reference.preview_bytes = preview, 12_345
    reference.save()
    make_run(owner, clip, reference=reference)  # its result is a copy of the clip
    gone = make_run(owner, clip, reference=reference)
    assert gone.discard()  # a deleted run's result takes no room
    make_run(stranger, clip)  # someone else's files are theirs

    clip_size = clip[0].stat().st_size
    assert storage_use(owner).used == reference.size + 12_345 + clip_size


def test_it_counts_the_quota_without_asking_the_store_about_each_file(
    owner, clip, monkeypatch, django_assert_num_queries
):
    """With a bucket, asking the size of each file is a request per file, on every upload
    and every Generate: the sizes are on the rows, so it is two queries and no request."""
    reference = make_reference(owner, clip)
    for _ in range(5):
        make_run(owner, clip, reference=reference)

    def no_store(*args: object) -> None:
        raise AssertionError("the quota asked the store for a file's size")

    monkeypatch.setattr(type(storages["default"]), "size", no_store)
    monkeypatch.setattr(type(storages["default"]), "exists", no_store)
    with django_assert_num_queries(2):
        used = storage_use(owner).used
    assert used == reference.size + 5 * clip[0].stat().st_size


def test_it_shows_the_storage_used_and_the_quota_on_the_references_page(
    owner_client, owner, settings
):
    settings.USER_STORAGE_QUOTA_MB = 10
    make_reference(owner, size=3 * 1024 * 1024)

    content = owner_client.get(reverse("references")).content.decode()

    assert "Using 3 MB of 10 MB" in content
    assert '<progress id="storage-bar" value="3145728" max="10485760">30%</progress>' in content


@pytest.mark.parametrize("view", ["login", "signup"])
def test_it_stores_no_file_posted_to_a_public_form(db, client, view, stored, storage, tmp_path):
    """Log-in and sign-up parse their bodies before any login check (CSRF reads them), so
    they must not become a way to make the server write big temporary files."""
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(3 * 1024 * 1024))
    with junk.open("rb") as fh:
        response = client.post(
            reverse(view), {"username": "x", "password": "y", "file": fh}, follow=False
        )
    assert response.status_code in (200, 404)  # the form answers as usual
    assert stored["memory"] == stored["disk"] == 0
    assert temp_files() == []

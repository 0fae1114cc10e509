"""Media files: HTTP Range for seeking, downloads, and files going with their run.

The Range tests are of lib/ranged.py, so they run on local files even when the suite runs
with a bucket (which answers Range itself: tests/test_storage.py); the others run on both.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse

from playground.lib.media import delete_folder
from playground.runs.models import Run, ShareLink
from tests.builders import is_stored, make_reference, make_run

pytestmark = pytest.mark.django_db


def body(response) -> bytes:
    assert response.streaming, "a file must be streamed, not loaded into memory"
    return b"".join(response.streaming_content)


@pytest.fixture(params=["run_result", "shared_result", "reference_video"])
def media(request, client: Client, owner: User, clip: tuple[Path, Path], local_files):
    """(client, url, bytes on disk) for each view that serves a video."""
    # The reference differs from the result, so a view serving the wrong file is caught.
    reference_source = Path(django_settings.MEDIA_ROOT).parent / "reference-source.mp4"
    shutil.copyfile(clip[0], reference_source)
    with reference_source.open("ab") as fh:
        fh.write(b"\0" * 1000)  # trailing padding: still a file of its own
    reference = make_reference(owner, (reference_source, clip[1]))
    run = make_run(owner, clip, reference=reference)
    if request.param == "shared_result":
        link = ShareLink.create(owner, run=run)
        return client, reverse("shared_result", args=[link.token]), clip[0].read_bytes()
    client.force_login(owner)
    if request.param == "run_result":
        return client, reverse("run_result", args=[run.code]), clip[0].read_bytes()
    return client, reverse("reference_video", args=[reference.code]), reference_source.read_bytes()


def test_it_serves_the_whole_file_without_a_range(media):
    client, url, data = media

    response = client.get(url)

    assert response.status_code == 200
    assert response["Content-Length"] == str(len(data))
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] == "video/mp4"
    assert "Content-Range" not in response
    assert body(response) == data


def test_it_serves_the_first_hundred_bytes(media):
    client, url, data = media

    response = client.get(url, headers={"Range": "bytes=0-99"})

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 0-99/{len(data)}"
    assert response["Content-Length"] == "100"
    assert response["Accept-Ranges"] == "bytes"
    assert response["Content-Type"] == "video/mp4"
    assert body(response) == data[:100]


def test_it_serves_a_range_in_the_middle(media):
    client, url, data = media

    response = client.get(url, headers={"Range": "bytes=1000-1999"})

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 1000-1999/{len(data)}"
    assert body(response) == data[1000:2000]


def test_it_serves_from_an_offset_to_the_end(media):
    client, url, data = media

    response = client.get(url, headers={"Range": "bytes=100-"})

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 100-{len(data) - 1}/{len(data)}"
    assert response["Content-Length"] == str(len(data) - 100)
    assert body(response) == data[100:]


def test_it_serves_the_last_bytes_for_a_suffix_range(media):
    client, url, data = media

    response = client.get(url, headers={"Range": "bytes=-50"})

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes {len(data) - 50}-{len(data) - 1}/{len(data)}"
    assert response["Content-Length"] == "50"
    assert body(response) == data[-50:]


def test_it_clamps_a_range_that_runs_past_the_end(media):
    client, url, data = media

    response = client.get(url, headers={"Range": f"bytes=10-{len(data) + 5000}"})

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 10-{len(data) - 1}/{len(data)}"
    assert body(response) == data[10:]


def test_it_serves_the_whole_file_for_a_suffix_longer_than_the_file(media):
    client, url, data = media

    response = client.get(url, headers={"Range": f"bytes=-{len(data) * 2}"})

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 0-{len(data) - 1}/{len(data)}"
    assert body(response) == data


@pytest.mark.parametrize("where", ["at-end", "past-end"])
def test_it_answers_416_for_a_range_that_starts_past_the_end(media, where):
    client, url, data = media
    start = len(data) if where == "at-end" else len(data) + 1000

    response = client.get(url, headers={"Range": f"bytes={start}-"})

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(data)}"


def test_it_serves_the_whole_file_for_a_multi_range_request(media):
    client, url, data = media

    response = client.get(url, headers={"Range": "bytes=0-9,20-29"})

    assert response.status_code == 200
    assert body(response) == data


# --- Hostile or invalid Range headers: never a 500 ------------------------------------------

HUGE = "9" * 5000  # Python refuses int() of more than 4,300 digits


@pytest.mark.parametrize(
    "value",
    [
        "bytes=5-3",  # last before first: invalid, so ignored (RFC 9110 §14.1.1)
        "bytes=10-09",  # compared as numbers, not as text
        f"bytes={HUGE}-5",  # a huge first and a small last: invalid too
        "bytes=\u0661\u0660-",  # Arabic-Indic digits: int() reads them, HTTP does not
        "bytes=\u00d9\u00a1-",  # the same header's UTF-8 bytes as WSGI hands them over
        "bytes=0-9\xff",
        "bytes=\xff\xfe",
        "bytes=-",
        "lines=0-9",
    ],
    ids=[
        "reversed",
        "reversed-zeros",
        "huge-reversed",
        "unicode-digits",
        "utf8-bytes",
        "trailing-byte",
        "binary",
        "empty",
        "other-unit",
    ],
)
def test_it_ignores_an_invalid_range_and_serves_the_whole_file(media, value):
    client, url, data = media

    response = client.get(url, headers={"Range": value})

    assert response.status_code == 200
    assert response["Content-Length"] == str(len(data))
    assert "Content-Range" not in response
    assert body(response) == data


def test_it_clamps_a_range_whose_end_has_thousands_of_digits(media):
    client, url, data = media

    response = client.get(url, headers={"Range": f"bytes=10-{HUGE}"})

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 10-{len(data) - 1}/{len(data)}"
    assert body(response) == data[10:]


def test_it_serves_the_whole_file_for_a_suffix_with_thousands_of_digits(media):
    client, url, data = media

    response = client.get(url, headers={"Range": f"bytes=-{HUGE}"})

    assert response.status_code == 206
    assert response["Content-Range"] == f"bytes 0-{len(data) - 1}/{len(data)}"
    assert body(response) == data


@pytest.mark.parametrize(
    "value",
    [f"bytes={HUGE}-", f"bytes={HUGE}-{HUGE}", "bytes=-0"],
    ids=["huge-start", "huge-both", "empty-suffix"],
)
def test_it_answers_416_for_a_valid_range_that_no_byte_satisfies(media, value):
    client, url, data = media

    response = client.get(url, headers={"Range": value})

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(data)}"


def test_it_reads_leading_zeros_and_the_unit_in_any_case(media):
    client, url, data = media

    response = client.get(url, headers={"Range": "Bytes=" + "0" * 5000 + "10-0019"})

    assert response.status_code == 206
    assert body(response) == data[10:20]


def test_it_offers_the_result_as_a_download_on_request(owner_client, owner, clip):
    run = make_run(owner, clip)
    url = reverse("run_result", args=[run.code])

    download = _fetched(owner_client.get(url, {"download": "1"}))
    inline = _fetched(owner_client.get(url))
    range_ = {"Range": "bytes=0-9"}
    ranged = _fetched(owner_client.get(url, {"download": "1"}, headers=range_), range_)

    assert download.status_code == 200
    assert download.headers["Content-Disposition"] == (
        f'attachment; filename="kling-{run.code}.mp4"'
    )
    assert download.content == clip[0].read_bytes()
    assert not inline.headers.get("Content-Disposition", "").startswith("attachment")
    assert ranged.status_code == 206
    assert ranged.headers["Content-Disposition"].startswith("attachment")
    assert ranged.content == clip[0].read_bytes()[:10]


def _fetched(response, headers: dict[str, str] | None = None) -> httpx.Response:
    """The answer the browser ends with: the view's own, or the bucket's after its redirect
    (as an httpx response either way, so both are read alike)."""
    if response.status_code == 302:
        return httpx.get(response["Location"], headers=headers or {})
    return httpx.Response(
        response.status_code, headers=dict(response.items()), content=body(response)
    )


def test_it_serves_posters_as_jpeg(owner_client, owner, clip):
    run = make_run(owner, clip)

    poster = owner_client.get(reverse("run_poster", args=[run.code]))
    reference_poster = owner_client.get(reverse("reference_poster", args=[run.reference.code]))

    for response in (_fetched(poster), _fetched(reference_poster)):
        assert response.status_code == 200
        assert response.headers["Content-Type"] == "image/jpeg"
        assert response.content == clip[1].read_bytes()


def test_it_answers_404_when_the_file_is_missing_from_storage(owner_client, owner, clip):
    run = make_run(owner, clip)
    default_storage.delete(run.result.name)

    assert owner_client.get(reverse("run_result", args=[run.code])).status_code == 404


def test_it_deletes_a_runs_files_with_the_run(owner_client, owner, clip):
    reference = make_reference(owner, clip)
    run = make_run(owner, clip, reference=reference)
    kept = make_run(owner, clip, reference=reference)
    result, poster = run.result.name, run.poster.name
    assert is_stored(result) and is_stored(poster)

    response = owner_client.post(reverse("run_delete", args=[run.code]))

    assert response.status_code == 302 and response["Location"] == reverse("history")
    assert not Run.objects.visible().filter(pk=run.pk).exists()
    assert not is_stored(result) and not is_stored(poster)
    # The other run and the reference (reusable for new runs) keep their files.
    assert is_stored(kept.result.name) and is_stored(kept.poster.name)
    assert is_stored(reference.file.name) and is_stored(reference.poster.name)
    assert owner_client.get(reverse("run_result", args=[run.code])).status_code == 404


def test_it_keeps_an_active_run_and_its_files_when_asked_to_delete_it(owner_client, owner, clip):
    reference = make_reference(owner, clip)
    run = make_run(owner, status="processing", reference=reference, provider_job_id="job_live")

    response = owner_client.post(reverse("run_delete", args=[run.code]))

    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    assert Run.objects.filter(pk=run.pk, status="processing").exists()


@pytest.mark.parametrize("folder", ["", "/", ".", "./", "/etc"])
def test_it_never_deletes_the_whole_store_for_an_empty_folder_name(folder):
    default_storage.save("references/keep/file.bin", ContentFile(b"kept"))
    with pytest.raises(ValueError):
        delete_folder(folder)
    assert default_storage.exists("references/keep/file.bin")

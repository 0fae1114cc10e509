"""Media in an S3 bucket (MEDIA_S3_BUCKET), against a real S3 server: moto's, started by
tests/s3.py (or the one tests/with_s3.py started for the whole suite)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from django.conf import settings as django_settings
from django.urls import reverse

from playground.lib import media, video
from playground.lib.bucket import bucket_storage
from playground.runs.models import Reference, Run, ShareLink
from playground.runs.references import (
    public_url_problem,
    reference_for_url,
    signed_reference_url,
    webhooks_enabled,
)
from playground.runs.tracker import track_until_idle
from playground.simulator import store
from tests import s3
from tests.builders import generate_data, make_reference, make_run

pytestmark = pytest.mark.django_db(transaction=True)

ENV_NAMES = [
    "MEDIA_S3_BUCKET",
    "MEDIA_S3_ENDPOINT_URL",
    "MEDIA_S3_REGION",
    "MEDIA_S3_ACCESS_KEY_ID",
    "MEDIA_S3_SECRET_ACCESS_KEY",
]


@pytest.fixture(scope="session")
def s3_env() -> Iterator[dict[str, str]]:
    """The suite's S3 server when it runs with one (tests/with_s3.py), else one of our own."""
    if os.environ.get("MEDIA_S3_BUCKET"):
        yield {name: os.environ[name] for name in ENV_NAMES}
        return
    with s3.s3_server() as env:
        yield env


@dataclass
class Bucket:
    """The bucket as S3 itself sees it (boto3, not the app's storage), under our prefix."""

    client: Any
    name: str
    prefix: str
    endpoint: str

    def names(self) -> list[str]:
        listed = self.client.list_objects_v2(Bucket=self.name, Prefix=self.prefix + "/")
        return sorted(o["Key"].removeprefix(self.prefix + "/") for o in listed.get("Contents", []))

    def get(self, name: str) -> bytes:
        return self.client.get_object(Bucket=self.name, Key=f"{self.prefix}/{name}")["Body"].read()


@pytest.fixture
def bucket(s3_env: dict[str, str], settings: Any) -> Iterator[Bucket]:
    """The app's media in the bucket, under a key prefix of this test's own."""
    prefix = f"storage-tests/{uuid.uuid4().hex}"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": bucket_storage(
            bucket=s3_env["MEDIA_S3_BUCKET"],
            endpoint_url=s3_env["MEDIA_S3_ENDPOINT_URL"],
            region=s3_env["MEDIA_S3_REGION"],
            access_key=s3_env["MEDIA_S3_ACCESS_KEY_ID"],
            secret_key=s3_env["MEDIA_S3_SECRET_ACCESS_KEY"],
            url_seconds=settings.MEDIA_URL_MAX_AGE_SECONDS,
            spool_bytes=settings.FILE_UPLOAD_MAX_MEMORY_SIZE,
            location=prefix,
        ),
    }
    client = s3.client(s3_env)
    yield Bucket(client, s3_env["MEDIA_S3_BUCKET"], prefix, s3_env["MEDIA_S3_ENDPOINT_URL"])
    for key in Bucket(client, s3_env["MEDIA_S3_BUCKET"], prefix, "").names():
        client.delete_object(Bucket=s3_env["MEDIA_S3_BUCKET"], Key=f"{prefix}/{key}")


def files_under_media_root() -> list[Path]:
    return [p for p in Path(django_settings.MEDIA_ROOT).rglob("*") if p.is_file()]


def query(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


# --- Uploads ---------------------------------------------------------------------------------


def test_it_stores_an_upload_in_the_bucket_and_nothing_under_media_root(
    bucket, owner_client, good_video
):
    response = owner_client.post(reverse("generate"), generate_data(good_video, prompt=""))

    assert response.status_code == 200  # the empty prompt fails; the upload is kept
    reference = Reference.objects.get()
    folder = f"references/{reference.code}"
    assert bucket.names() == [f"{folder}/original.mp4", f"{folder}/poster.jpg"]
    assert bucket.get(reference.file.name) == good_video.read_bytes()
    with media.local_copy(reference.poster.name) as poster:
        assert poster.read_bytes()[:3] == b"\xff\xd8\xff"  # a JPEG
    assert files_under_media_root() == []
    assert not media.is_local()


def test_it_keeps_nothing_in_the_bucket_of_a_rejected_upload(bucket, owner_client, tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(os.urandom(50_000))

    with junk.open("rb") as fh:
        response = owner_client.post(reverse("generate"), generate_data(reference_video=fh))

    assert "can’t be used" in response.context["form"].errors["reference_video"][0]
    assert bucket.names() == [] and not Reference.objects.exists()


# --- What the provider is handed -------------------------------------------------------------


def test_it_hands_the_provider_a_presigned_url_that_serves_the_reference(
    bucket, owner, clip, settings
):
    reference = make_reference(owner, clip)

    url = signed_reference_url(reference)

    assert url.startswith(f"{bucket.endpoint}/{bucket.name}/{bucket.prefix}/references/")
    signed = query(url)
    assert signed["X-Amz-Algorithm"] == "AWS4-HMAC-SHA256"
    # The provider's URL lasts as long as the signed ones on local files: a queued job must
    # still be able to fetch it when it starts.
    assert signed["X-Amz-Expires"] == str(settings.REFERENCE_URL_MAX_AGE_SECONDS)
    fetched = httpx.get(url)
    assert fetched.status_code == 200
    assert fetched.headers["Content-Type"] == "video/mp4"
    assert fetched.content == clip[0].read_bytes()
    # The bucket is private: the same object without a signature is refused.
    assert httpx.get(url.split("?")[0]).status_code == 403
    assert reference_for_url(url) == reference


def test_it_takes_only_presigned_urls_of_references_as_the_simulators_input(bucket, owner, clip):
    run = make_run(owner, clip)
    reference = run.reference
    assert reference is not None
    url = signed_reference_url(reference)
    # The run's result is in the bucket too, but it is no reference.
    result = media.object_url(run.result.name, seconds=60, content_type="video/mp4")
    elsewhere = url.replace(urlsplit(url).netloc, "s3.example.com")

    assert reference_for_url(url) == reference
    assert reference_for_url(result) is None
    assert reference_for_url(elsewhere) is None


def test_it_copies_a_runs_result_into_the_bucket_end_to_end(
    bucket, gateway, owner_client, good_video
):
    response = owner_client.post(reverse("generate"), generate_data(good_video))
    run = Run.objects.get()
    assert response.status_code == 302

    track_until_idle(timeout=60)

    run.refresh_from_db()
    assert run.status == "completed", run.error_message
    # The simulator fetched the reference from the bucket, by its presigned URL…
    job = store.SimJob.load(run.provider_job_id)
    assert job.video_url.startswith(f"{bucket.endpoint}/{bucket.name}/")
    assert "X-Amz-Signature=" in job.video_url
    # …and the tracker copied the result into it, with its poster.
    assert run.result.name == f"results/{run.code}.mp4"
    assert {run.result.name, run.poster.name} <= set(bucket.names())
    assert bucket.get(run.result.name) == job.output_path.read_bytes()
    with media.local_copy(run.result.name) as path:
        facts = video.probe(path)
    assert facts.codec == "h264" and abs(facts.duration - 3) < 0.2
    assert files_under_media_root() == []


# --- The media views: the access check, then a redirect to the bucket ------------------------


def test_it_redirects_the_owner_to_a_presigned_url_and_a_stranger_gets_404(
    bucket, owner_client, stranger_client, owner, clip, settings
):
    run = make_run(owner, clip)
    url = reverse("run_result", args=[run.code])

    redirect = owner_client.get(url)
    refused = stranger_client.get(url)

    assert redirect.status_code == 302
    location = redirect["Location"]
    assert location.startswith(f"{bucket.endpoint}/{bucket.name}/{bucket.prefix}/results/")
    assert query(location)["X-Amz-Expires"] == str(settings.MEDIA_URL_MAX_AGE_SECONDS)
    # The redirect is kept no longer than its URL surely works.
    assert (
        redirect["Cache-Control"] == f"private, max-age={settings.MEDIA_URL_MAX_AGE_SECONDS // 2}"
    )
    # The browser seeks against the bucket itself.
    ranged = httpx.get(location, headers={"Range": "bytes=100-199"})
    assert ranged.status_code == 206
    assert ranged.headers["Content-Range"] == f"bytes 100-199/{clip[0].stat().st_size}"
    assert ranged.headers["Content-Type"] == "video/mp4"
    assert ranged.content == clip[0].read_bytes()[100:200]
    assert refused.status_code == 404 and "Location" not in refused


def test_it_signs_the_download_name_and_the_type_into_the_url(bucket, owner_client, owner, clip):
    run = make_run(owner, clip)
    mov = make_reference(owner, clip, file="")
    mov.file = f"references/{mov.code}/original.mov"
    mov.save()
    media.save(mov.file.name, clip[0])

    download = owner_client.get(reverse("run_result", args=[run.code]), {"download": "1"})
    poster = owner_client.get(reverse("run_poster", args=[run.code]))
    original = httpx.get(signed_reference_url(mov))

    fetched = httpx.get(download["Location"])
    assert fetched.headers["Content-Disposition"] == f'attachment; filename="kling-{run.code}.mp4"'
    assert fetched.content == clip[0].read_bytes()
    assert httpx.get(poster["Location"]).headers["Content-Type"] == "image/jpeg"
    assert original.headers["Content-Type"] == "video/quicktime"


def test_it_redirects_to_a_thumbnail_it_made_in_the_bucket(bucket, owner_client, owner, clip):
    run = make_run(owner, clip)

    response = owner_client.get(reverse("run_thumb", args=[run.code]))

    assert response.status_code == 302
    assert f"results/{run.code}.thumb.jpg" in bucket.names()
    thumb = httpx.get(response["Location"])
    assert thumb.headers["Content-Type"] == "image/jpeg" and thumb.content[:3] == b"\xff\xd8\xff"
    assert len(thumb.content) < len(clip[1].read_bytes())


def test_it_answers_404_for_a_revoked_share_link_and_redirects_for_a_live_one(
    bucket, client, owner, clip
):
    run = make_run(owner, clip)
    link = ShareLink.create(owner, run=run)
    url = reverse("shared_result", args=[link.token])

    live = client.get(url)
    link.revoke()
    revoked = client.get(url)

    assert live.status_code == 302 and httpx.get(live["Location"]).content == clip[0].read_bytes()
    assert live["Cache-Control"] == "private, no-cache"
    assert revoked.status_code == 404 and "Location" not in revoked


def test_it_answers_404_when_the_object_is_gone(bucket, owner_client, owner, clip):
    run = make_run(owner, clip)
    bucket.client.delete_object(Bucket=bucket.name, Key=f"{bucket.prefix}/{run.result.name}")

    response = owner_client.get(reverse("run_result", args=[run.code]))

    assert response.status_code == 404 and "Location" not in response


def test_it_presigns_urls_that_expire(bucket, owner, clip):
    """moto's server does not refuse an expired presigned URL (checked: it answers 200
    after the expiry, and for a tampered signature too), so this checks what a real S3
    enforces: the signing time and lifetime signed into the URL."""
    reference = make_reference(owner, clip)

    url = media.object_url(reference.file.name, seconds=1, content_type="video/mp4")

    signed = query(url)
    assert signed["X-Amz-Expires"] == "1"
    assert len(signed["X-Amz-Date"]) == 16 and signed["X-Amz-Date"].endswith("Z")
    assert len(signed["X-Amz-Signature"]) == 64  # SigV4 signs the query, the expiry with it


# --- Deleting ----------------------------------------------------------------------------


def test_it_deletes_a_runs_objects_with_the_run(bucket, owner_client, owner, clip):
    run = make_run(owner, clip)
    owner_client.get(reverse("run_thumb", args=[run.code]))  # a thumbnail beside the poster
    own = {f"results/{run.code}.mp4", f"results/{run.code}.jpg", f"results/{run.code}.thumb.jpg"}
    assert own <= set(bucket.names())

    owner_client.post(reverse("run_delete", args=[run.code]))

    assert not own & set(bucket.names())
    assert run.reference is not None
    assert run.reference.file.name in bucket.names()  # the reference stays for reuse


def test_it_deletes_every_object_of_a_reference_with_it(bucket, owner_client, owner, clip):
    reference = make_reference(owner, clip)
    media.save(f"references/{reference.code}/preview.mp4", clip[0])
    owner_client.get(reverse("reference_thumb", args=[reference.code]))
    other = make_reference(owner, clip)
    assert len([k for k in bucket.names() if str(reference.code) in k]) == 4

    owner_client.post(reverse("reference_delete", args=[reference.code]))

    assert not Reference.objects.filter(pk=reference.pk).exists()
    assert [k for k in bucket.names() if str(reference.code) in k] == []
    assert other.file.name in bucket.names()


# --- No public address needed for the reference ------------------------------------------


def test_it_needs_no_public_address_when_the_provider_fetches_from_the_bucket(settings):
    settings.AIGATEWAY_BASE_URL = "https://api.aigateway.sh"
    settings.PUBLIC_BASE_URL = ""
    settings.AIGATEWAY_WEBHOOK_SECRET = "whsec-test"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": bucket_storage(
            bucket="media",
            endpoint_url="https://s3.example.com",
            url_seconds=300,
            spool_bytes=1024,
        ),
    }

    assert public_url_problem() == ""
    assert not webhooks_enabled()  # webhooks still need our address; polling covers them
    settings.PUBLIC_BASE_URL = "https://play.example.com"
    assert webhooks_enabled()


def test_it_refuses_a_bucket_the_remote_provider_could_not_reach(s3_env, bucket, settings):
    settings.AIGATEWAY_BASE_URL = "https://api.aigateway.sh"
    settings.PUBLIC_BASE_URL = "https://play.example.com"

    problem = public_url_problem()

    assert "MEDIA_S3_ENDPOINT_URL" in problem and s3_env["MEDIA_S3_ENDPOINT_URL"] in problem


def test_it_still_needs_a_public_address_on_local_files(settings, local_files):
    settings.AIGATEWAY_BASE_URL = "https://api.aigateway.sh"
    settings.PUBLIC_BASE_URL = ""

    assert "PUBLIC_BASE_URL" in public_url_problem()

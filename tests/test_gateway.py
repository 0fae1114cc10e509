"""The gateway client through real HTTP against the simulator.

Faults the simulator can stage (429, 5xx, 401/402/404, malformed bodies, slow answers,
expired result URLs, 409 on cancel) are staged there; only faults it cannot produce (a
reset connection, a body cut mid-stream, an unreadable Retry-After, the POST …/cancel
variant) use httpx.MockTransport at the client seam.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from playground.gateway import Gateway, GatewayError, Job, gateway_from_settings
from playground.lib import video
from playground.runs.references import signed_reference_url, store_upload
from playground.simulator import store
from tests.videos import make_video

MODEL = "kuaishou/kling-video-o1-video-to-video-reference"
# Tests that talk to the live simulator need a transactional database (its thread reads it).
live = pytest.mark.django_db(transaction=True)


# --- fixtures and helpers -----------------------------------------------------------------


class CountingTransport(httpx.HTTPTransport):
    """The real HTTP transport, remembering every request it sent (not a mock)."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        return super().handle_request(request)


@pytest.fixture(scope="module")
def small_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("gateway-videos")
    return make_video(folder / "small.mp4", width=720, height=720, seconds=3.2)


@pytest.fixture
def transport() -> CountingTransport:
    return CountingTransport()


@pytest.fixture
def sim(gateway, transport) -> Iterator[Gateway]:
    """A client from the app's settings, pointed at the live simulator, three attempts."""
    store.clear_faults()
    client = gateway_from_settings(attempts=3, transport=transport)
    yield client
    client.close()


@pytest.fixture
def video_url(db, owner, small_video) -> str:
    upload = SimpleUploadedFile("small.mp4", small_video.read_bytes(), content_type="video/mp4")
    return signed_reference_url(store_upload(owner, upload))


def submit(client: Gateway, video_url: str, key: str = "key-1", **overrides: object) -> Job:
    options: dict = {
        "prompt": "@Video1 at golden hour, warm light",
        "duration": 3,
        "aspect_ratio": "auto",
        "video_url": video_url,
        "keep_audio": False,
        "idempotency_key": key,
    }
    options.update(overrides)
    return client.submit(**options)


def wait_until_final(client: Gateway, job_id: str, timeout: float = 45) -> tuple[Job, list[str]]:
    """Poll quickly (the simulator is fast in tests); return the final job and the statuses
    seen, consecutive repeats dropped."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while True:
        job = client.get_job(job_id)
        if not seen or seen[-1] != job.status:
            seen.append(job.status)
        if job.is_final or time.monotonic() > deadline:
            return job, seen
        time.sleep(0.05)


def count(transport: CountingTransport, method: str, path_part: str) -> int:
    return sum(1 for m, p in transport.requests if m == method and path_part in p)


def mock_gateway(handler, *, attempts: int = 3, timeout: float = 5.0) -> Gateway:
    return Gateway(
        "https://gateway.test/",
        "sk-test",
        model=MODEL,
        attempts=attempts,
        timeout=timeout,
        transport=httpx.MockTransport(handler),
    )


def job_json(job_id: str = "job_abc123", status: str = "queued", **extra: object) -> dict:
    return {"id": job_id, "status": status, **extra}


# --- the happy path -----------------------------------------------------------------------


@live
def test_it_submits_polls_to_completion_and_downloads_a_real_mp4(
    sim, transport, video_url, tmp_path
):
    job = submit(sim, video_url)
    assert job.status == "queued" and job.id.startswith("job_")
    assert not job.result_url and not job.is_final

    final, seen = wait_until_final(sim, job.id)
    assert final.status == "completed", final.error_message
    assert seen in (["queued", "processing", "completed"], ["processing", "completed"])
    assert final.result_url.startswith("http")
    assert final.result_duration == 3.0
    assert final.result_resolution == "1080x1080"  # the model's 1:1 size for a square clip

    dest = tmp_path / "out" / "result.mp4"
    dest.parent.mkdir()
    size = sim.download(final.result_url, dest)
    assert size == dest.stat().st_size > 0
    assert sorted(p.name for p in dest.parent.iterdir()) == ["result.mp4"]  # no .part left
    facts = video.probe(dest)
    assert facts.is_mp4_family and facts.codec == "h264"
    assert (facts.width, facts.height) == (1080, 1080)
    assert abs(facts.duration - 3) < 0.2
    # Result files are fetched without the gateway's credentials (they live on a CDN).
    assert count(transport, "GET", "/sim/files/") == 1


def test_it_sends_the_documented_request():
    video_url = "https://me.example/r/token"
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json=job_json())

    client = mock_gateway(handler)
    submit(client, video_url, key="abc", webhook_url="https://me.example/hook")
    (request,) = seen
    assert request.method == "POST"
    assert str(request.url) == "https://gateway.test/v1/videos/generations"
    assert request.headers["Authorization"] == "Bearer sk-test"
    assert request.headers["Idempotency-Key"] == "abc"
    assert json.loads(request.content) == {
        "model": MODEL,
        "prompt": "@Video1 at golden hour, warm light",
        "duration": 3,
        "aspect_ratio": "auto",
        "video_url": video_url,
        "keep_audio": False,
        "webhook_url": "https://me.example/hook",
    }


@live
def test_it_returns_the_same_job_for_a_repeated_idempotency_key(sim, video_url):
    first = submit(sim, video_url, key="same-key")
    second = submit(sim, video_url, key="same-key")
    assert second.id == first.id
    assert store.job_ids() == [first.id]
    third = submit(sim, video_url, key="other-key")
    assert third.id != first.id
    assert sorted(store.job_ids()) == sorted([first.id, third.id])


# --- transient faults: retried --------------------------------------------------------------


@live
def test_it_waits_what_retry_after_asks_then_succeeds(sim, transport, video_url):
    store.add_fault(on="submit", status=429, retry_after=1)
    started = time.monotonic()
    job = submit(sim, video_url)
    elapsed = time.monotonic() - started
    assert job.status == "queued"
    assert elapsed >= 1.0
    assert count(transport, "POST", "/generations") == 2
    assert store.job_ids() == [job.id]


def _rate_limited_once(retry_after: str) -> tuple[list[httpx.Request], Gateway]:
    calls: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            return httpx.Response(
                429,
                headers={"Retry-After": retry_after},
                json={"error": {"message": "Slow down.", "type": "rate_limit_error"}},
            )
        return httpx.Response(200, json=job_json(status="processing"))

    return calls, mock_gateway(handler)


def test_it_honours_retry_after_as_an_http_date():
    calls, client = _rate_limited_once("Wed, 21 Oct 2015 07:28:00 GMT")  # already past
    assert client.get_job("job_abc123").status == "processing"
    assert len(calls) == 2


@pytest.mark.parametrize(
    "retry_after",
    ["soon", "Wed, 21 Oct 2015 07:28:00 -0000", "-"],
    ids=["word", "date-without-zone", "dash"],
)
def test_it_survives_a_retry_after_it_cannot_read(retry_after):
    """A junk header is a fault to survive: retry on the usual backoff, and never raise
    anything but GatewayError."""
    calls, client = _rate_limited_once(retry_after)
    assert client.get_job("job_abc123").status == "processing"
    assert len(calls) == 2


@live
@pytest.mark.parametrize("status", [500, 503])
def test_it_retries_server_errors_then_succeeds(sim, transport, video_url, status):
    store.add_fault(on="submit", status=status, times=2)
    job = submit(sim, video_url)
    assert job.status == "queued"
    assert count(transport, "POST", "/generations") == 3
    assert store.job_ids() == [job.id]


@live
def test_it_retries_server_errors_on_poll(sim, transport, video_url):
    job = submit(sim, video_url)
    store.add_fault(on="poll", status=503)
    polled = sim.get_job(job.id)
    assert polled.id == job.id
    assert count(transport, "GET", f"/jobs/{job.id}") == 2


@live
def test_it_gives_up_after_too_many_503s_with_a_retryable_error(sim, transport, video_url):
    store.add_fault(on="submit", status=503, times=3)
    with pytest.raises(GatewayError) as caught:
        submit(sim, video_url)
    assert caught.value.retryable is True
    assert caught.value.status == 503
    assert count(transport, "POST", "/generations") == 3
    assert store.job_ids() == []


# --- permanent faults: at once, with words a user can act on ---------------------------------


@live
@pytest.mark.parametrize(
    ("status", "advice"),
    [(401, "AIGATEWAY_API_KEY"), (402, "credits"), (404, "does not know")],
)
def test_it_fails_at_once_on_permanent_errors(sim, transport, video_url, status, advice):
    store.add_fault(on="submit", status=status, times=5)
    with pytest.raises(GatewayError) as caught:
        submit(sim, video_url)
    assert caught.value.status == status
    assert caught.value.retryable is False
    assert advice in caught.value.message
    assert len(transport.requests) == 1
    assert store.job_ids() == []


@live
def test_it_says_so_when_the_gateway_does_not_know_a_job(sim, transport):
    with pytest.raises(GatewayError) as caught:
        sim.get_job("job_0123456789abcdef0123")
    assert caught.value.status == 404
    assert caught.value.retryable is False
    assert "does not know" in caught.value.message
    assert len(transport.requests) == 1


@live
def test_it_tells_the_user_about_an_unknown_model(gateway, transport, video_url):
    client = gateway_from_settings(model="kuaishou/no-such-model", transport=transport)
    try:
        with pytest.raises(GatewayError) as caught:
            submit(client, video_url)
    finally:
        client.close()
    assert caught.value.status == 404 and not caught.value.retryable
    assert "no-such-model" in caught.value.message  # the gateway's own words are kept
    assert len(transport.requests) == 1


# --- broken answers ---------------------------------------------------------------------------


@live
def test_it_retries_a_malformed_body(sim, transport, video_url):
    job = submit(sim, video_url)
    store.add_fault(on="poll", malformed=True)
    polled = sim.get_job(job.id)
    assert polled.id == job.id
    assert count(transport, "GET", f"/jobs/{job.id}") == 2


@live
def test_it_raises_a_retryable_error_when_bodies_stay_malformed(sim, video_url):
    job = submit(sim, video_url)
    store.add_fault(on="poll", malformed=True, times=3)
    with pytest.raises(GatewayError) as caught:
        sim.get_job(job.id)
    assert caught.value.code == "malformed_body"
    assert caught.value.retryable is True


@live
def test_it_retries_a_slow_answer(gateway, transport, video_url):
    client = gateway_from_settings(timeout=0.5, attempts=3, transport=transport)
    try:
        job = submit(client, video_url)
        store.add_fault(on="poll", delay=1.5)
        started = time.monotonic()
        polled = client.get_job(job.id)
        assert time.monotonic() - started < 1.5 + 2  # did not wait for the slow answer
    finally:
        client.close()
    assert polled.id == job.id
    assert count(transport, "GET", f"/jobs/{job.id}") == 2


@live
def test_it_raises_a_timeout_error_when_answers_stay_slow(gateway, transport, video_url):
    client = gateway_from_settings(timeout=0.5, attempts=3, transport=transport)
    try:
        job = submit(client, video_url)
        store.add_fault(on="poll", delay=1.5, times=3)
        with pytest.raises(GatewayError) as caught:
            client.get_job(job.id)
    finally:
        client.close()
    assert caught.value.code == "timeout"
    assert caught.value.retryable is True
    assert count(transport, "GET", f"/jobs/{job.id}") == 3


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError])
def test_it_retries_a_reset_connection(error):
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        if len(calls) == 1:
            raise error("Connection reset by peer", request=request)
        return httpx.Response(200, json=job_json(status="running"))

    job = mock_gateway(handler).get_job("job_abc123")
    assert job.status == "processing"
    assert len(calls) == 2


def test_it_raises_a_retryable_error_when_the_connection_keeps_resetting():
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        raise httpx.RemoteProtocolError("Server disconnected", request=request)

    with pytest.raises(GatewayError) as caught:
        mock_gateway(handler).get_job("job_abc123")
    assert caught.value.code == "connection_error"
    assert caught.value.retryable is True
    assert len(calls) == 3


def test_it_keeps_an_existing_file_when_a_download_breaks_off(tmp_path):
    class BrokenStream(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield b"\x00" * 1024
            raise httpx.ReadError("Connection reset by peer")

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=BrokenStream())

    dest = tmp_path / "result.mp4"
    dest.write_bytes(b"the earlier, complete file")
    with pytest.raises(GatewayError) as caught:
        mock_gateway(handler, attempts=2).download("https://cdn.test/result.mp4", dest)
    assert caught.value.retryable is True
    assert dest.read_bytes() == b"the earlier, complete file"


# --- every documented body variant ------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        job_json(status="completed", result={"url": "https://cdn.test/a.mp4"}),
        job_json(status="completed", result={"file_url": "https://cdn.test/a.mp4"}),
        job_json(status="completed", result_url="https://cdn.test/a.mp4"),
        job_json(status="succeeded", result={"url": "https://cdn.test/a.mp4"}),
    ],
    ids=["result.url", "result.file_url", "result_url", "succeeded"],
)
def test_it_accepts_every_result_url_variant(body):
    job = Job.from_body(body)
    assert job.status == "completed" and job.is_final
    assert job.result_url == "https://cdn.test/a.mp4"


def test_it_reads_result_duration_and_resolution():
    job = Job.from_body(
        job_json(
            status="completed",
            result={"url": "https://cdn.test/a.mp4", "duration": 5, "resolution": "1920x1080"},
        )
    )
    assert job.result_duration == 5.0 and job.result_resolution == "1920x1080"


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("queued", "queued"),
        ("pending", "queued"),
        ("processing", "processing"),
        ("running", "processing"),
        ("RUNNING", "processing"),
        ("in_progress", "processing"),
        ("cancelled", "cancelled"),
        ("canceled", "cancelled"),
    ],
)
def test_it_normalises_statuses(given, expected):
    job = Job.from_body(job_json(status=given))
    assert job.status == expected
    assert job.is_final is (expected == "cancelled")


def test_it_reads_a_failed_job_with_its_error():
    job = Job.from_body(
        job_json(status="failed", error={"code": "content_policy", "message": "Not allowed."})
    )
    assert job.status == "failed" and job.is_final
    assert job.error_code == "content_policy"
    assert job.error_message == "Not allowed."


def test_it_gives_a_failed_job_without_error_a_message():
    job = Job.from_body(job_json(status="failed"))
    assert job.status == "failed"
    assert job.error_message


@pytest.mark.parametrize(
    "body",
    [
        None,
        "job_abc123",
        ["job_abc123"],
        {"status": "queued"},
        {"id": 12, "status": "queued"},
        job_json(status="exploded"),
        job_json(status=""),
        job_json(status="completed"),
        job_json(status="completed", result={"duration": 3}),
    ],
    ids=[
        "none",
        "string",
        "list",
        "no-id",
        "numeric-id",
        "unknown-status",
        "no-status",
        "completed-no-url",
        "completed-result-no-url",
    ],
)
def test_it_rejects_junk_bodies_as_retryable(body):
    with pytest.raises(GatewayError) as caught:
        Job.from_body(body)
    assert caught.value.retryable is True
    assert caught.value.code == "malformed_body"


# --- expired result URLs -----------------------------------------------------------------------


@live
def test_it_reports_an_expired_result_url_and_a_fresh_one_works(
    sim, transport, video_url, tmp_path
):
    store.add_fault(on="job", expired_urls=1)
    job = submit(sim, video_url)
    final, _ = wait_until_final(sim, job.id)
    assert final.status == "completed"
    # The one expired URL asked for has been handed out; the next one will be fresh.
    assert store.SimJob.load(job.id).expired_urls_left == 0

    dest = tmp_path / "result.mp4"
    with pytest.raises(GatewayError) as caught:
        sim.download(final.result_url, dest)
    assert caught.value.code == "result_url_expired"
    assert caught.value.retryable is False
    assert count(transport, "GET", "/sim/files/") == 1  # not retried: it can't get better
    assert not dest.exists()

    fresh = sim.get_job(job.id)
    assert fresh.result_url and fresh.result_url != final.result_url
    sim.download(fresh.result_url, dest)
    assert video.probe(dest).codec == "h264"


# --- cancel -----------------------------------------------------------------------------------


@live
def test_it_cancels_a_queued_job(sim, transport, video_url, settings):
    settings.SIMULATOR_QUEUED_SECONDS = 60  # stays queued for the whole test
    job = submit(sim, video_url)
    assert sim.get_job(job.id).status == "queued"
    sim.cancel(job.id)
    assert count(transport, "POST", f"/jobs/{job.id}/cancel") == 1  # the documented route
    assert count(transport, "DELETE", f"/jobs/{job.id}") == 0
    assert sim.get_job(job.id).status == "cancelled"
    assert store.SimJob.load(job.id).cancelled_at is not None


@live
def test_it_raises_409_when_cancelling_a_finished_job(sim, video_url):
    job = submit(sim, video_url)
    final, _ = wait_until_final(sim, job.id)
    assert final.status == "completed"
    with pytest.raises(GatewayError) as caught:
        sim.cancel(job.id)
    assert caught.value.status == 409
    assert sim.get_job(job.id).status == "completed"


@pytest.mark.parametrize("refusal", [404, 405])
def test_it_falls_back_to_delete_where_post_cancel_is_unknown(refusal):
    calls: list[tuple[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append((request.method, request.url.path))
        if request.method == "POST":
            return httpx.Response(refusal, json={"error": {"message": "No such route."}})
        return httpx.Response(200, json=job_json(status="cancelled"))

    mock_gateway(handler).cancel("job_abc123")
    assert calls == [("POST", "/v1/jobs/job_abc123/cancel"), ("DELETE", "/v1/jobs/job_abc123")]

"""The gateway simulator itself: who may use it, what it fetches and calls, how much work it
takes on, its 304, its structure, and an output shaped like the model's (1080p, 24 fps).

API calls go over real HTTP to the simulator on the live server, with raw httpx where a
test needs to see the exact answer (our client would retry or interpret it).
"""

from __future__ import annotations

import ast
import hashlib
import hmac
import http.server
import threading
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import av
import httpx
import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from playground import kling
from playground.gateway import gateway_from_settings
from playground.lib import video
from playground.runs.references import public_base_url, signed_reference_url, store_upload
from playground.simulator import contract, engine, render, store
from tests.videos import make_video

live = pytest.mark.django_db(transaction=True)
SIMULATOR = Path(__file__).resolve().parent.parent / "playground" / "simulator"


# --- fixtures and helpers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(
        tmp_path_factory.mktemp("sim") / "small.mp4", width=720, height=720, seconds=3.2
    )


@pytest.fixture
def video_url(db, owner, small_video) -> str:
    upload = SimpleUploadedFile("small.mp4", small_video.read_bytes(), content_type="video/mp4")
    return signed_reference_url(store_upload(owner, upload))


@pytest.fixture
def api(gateway, settings):
    """Raw HTTP to the live simulator, with this instance's key."""
    store.clear_faults()
    headers = {"Authorization": f"Bearer {settings.SIMULATOR_API_KEY}"}
    with httpx.Client(base_url=gateway.url + "/sim", headers=headers, timeout=30) as client:
        yield client


def generation(video_url: str, **overrides: object) -> dict:
    return {
        "model": kling.MODEL_ID,
        "prompt": "@Video1 at golden hour",
        "duration": 3,
        "aspect_ratio": "auto",
        "video_url": video_url,
        "keep_audio": False,
        **overrides,
    }


def other_name(url: str) -> str:
    """The same URL with localhost for 127.0.0.1, or the other way round."""
    host = urlsplit(url).hostname
    return url.replace(host, "127.0.0.1" if host == "localhost" else "localhost", 1)


def assert_error(response: httpx.Response, status: int, type_: str, param: str = "") -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == type_ and error["message"]
    assert error["param"] == param


# --- 1. only this instance's own client, own references, own webhook ---------------------------


@live
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer sk-aig-not-this-instance",
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer \xe9t\xe9 \xff".encode("latin-1"),  # not ASCII: a wrong key, not a 500
        b"\xc3\xa9\xc3\xa9 \xf0\x9f\x94\x91",
    ],
    ids=["none", "wrong-key", "basic", "empty-bearer", "latin-1", "utf-8"],
)
def test_it_refuses_api_calls_without_the_instance_key(gateway, video_url, settings, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    job = f"job_{'0' * 20}"
    calls = [
        ("POST", "/v1/videos/generations", generation(video_url)),
        ("GET", f"/v1/jobs/{job}", None),
        ("DELETE", f"/v1/jobs/{job}", None),
        ("POST", f"/v1/jobs/{job}/cancel", None),
    ]
    with httpx.Client(base_url=gateway.url + "/sim", timeout=10) as client:
        for method, path, body in calls:
            response = client.request(method, path, json=body, headers=headers)
            assert_error(response, 401, "authentication_error")
    assert store.job_ids() == []


@live
def test_it_answers_its_own_client(gateway, video_url):
    client = gateway_from_settings(attempts=1)
    try:
        job = client.submit(
            prompt="@Video1 at golden hour",
            duration=3,
            aspect_ratio="auto",
            video_url=video_url,
            keep_audio=False,
            idempotency_key="own-client",
        )
        assert client.get_job(job.id).id == job.id
    finally:
        client.close()
    assert store.job_ids() == [job.id]


@live
@pytest.mark.parametrize(
    "make_url",
    [
        lambda good: "https://example.com/clip.mp4",
        lambda good: "http://169.254.169.254/latest/meta-data/",
        lambda good: "file:///etc/passwd",
        lambda good: public_base_url() + "/r/not-a-signed-token",
        lambda good: good + "?then=elsewhere",
        lambda good: other_name(good),  # the same server by another name
        lambda good: public_base_url() + reverse("webhook"),
        lambda good: 42,
    ],
    ids=[
        "elsewhere",
        "metadata",
        "file",
        "bad-token",
        "extra-query",
        "other-host",
        "other-path",
        "number",
    ],
)
def test_it_fetches_only_this_instances_signed_references(api, video_url, make_url):
    response = api.post("/v1/videos/generations", json=generation(make_url(video_url)))
    assert_error(response, 400, "invalid_request_error", param="video_url")
    assert store.job_ids() == []


@live
@pytest.mark.parametrize(
    "webhook_url",
    ["https://example.com/hook", "/webhooks/aigateway", "own+/extra", "own-path:/admin/", 1],
)
def test_it_calls_back_only_this_instances_webhook(api, video_url, webhook_url):
    own = public_base_url() + reverse("webhook")
    if isinstance(webhook_url, str):
        webhook_url = webhook_url.replace("own+", own).replace("own-path:", public_base_url())
    body = generation(video_url, webhook_url=webhook_url)
    response = api.post("/v1/videos/generations", json=body)
    assert_error(response, 400, "invalid_request_error", param="webhook_url")
    assert store.job_ids() == []

    accepted = api.post("/v1/videos/generations", json=generation(video_url, webhook_url=own))
    assert accepted.status_code == 202, accepted.text


@live
def test_it_does_not_follow_redirects_when_fetching(gateway, tmp_path):
    folder = tmp_path / "inputs"
    folder.mkdir()
    # A page of this instance that redirects (to the log-in page): the reference route never
    # does, so a redirect is somewhere the submit did not check.
    assert httpx.get(gateway.url + reverse("history")).status_code == 302
    error = engine.fetch_reference(gateway.url + reverse("history"), folder / "input.mp4")
    assert "HTTP 302" in error
    assert list(folder.iterdir()) == []


@live
def test_it_stops_reading_a_reference_past_the_size_limit(
    gateway, video_url, tmp_path, monkeypatch
):
    monkeypatch.setattr(kling, "REFERENCE_MAX_BYTES", 20_000)
    folder = tmp_path / "inputs"
    folder.mkdir()
    error = engine.fetch_reference(video_url, folder / "input.mp4")
    assert "larger than 20 KB" in error
    assert list(folder.iterdir()) == []  # nothing kept, not even a part file

    client = gateway_from_settings(attempts=1)
    try:
        job = client.submit(
            prompt="@Video1 at night",
            duration=3,
            aspect_ratio="auto",
            video_url=video_url,
            keep_audio=False,
            idempotency_key="too-big",
        )
        deadline = time.monotonic() + 20
        while not (job := client.get_job(job.id)).is_final and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        client.close()
    assert job.status == "failed"
    assert "larger than 20 KB" in job.error_message


class Streamer(http.server.BaseHTTPRequestHandler):
    """Answers 200 without a Content-Length, then `piece` bytes every `pause` seconds until
    the client hangs up (or 50 MB)."""

    piece, pause, sent = 65536, 0.0, 0

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.end_headers()
        try:
            while type(self).sent < 50_000_000:
                self.wfile.write(b"\0" * self.piece)
                self.wfile.flush()
                type(self).sent += self.piece
                time.sleep(self.pause)
        except OSError:
            pass  # the client stopped reading

    def log_message(self, *args: object) -> None:
        pass


def fetch_from(handler: type[Streamer], dest: Path) -> str:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        return engine.fetch_reference(f"http://127.0.0.1:{server.server_address[1]}/r", dest)
    finally:
        server.shutdown()
        server.server_close()


def test_it_stops_reading_a_body_without_a_length_at_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(kling, "REFERENCE_MAX_BYTES", 1024 * 1024)
    handler = type("Endless", (Streamer,), {})
    error = fetch_from(handler, tmp_path / "input.mp4")
    assert "larger than 1 MB" in error
    assert handler.sent < 20_000_000  # it hung up, far from the end
    assert not list(tmp_path.glob("input.mp4*"))


def test_it_gives_up_on_a_reference_that_trickles_in(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "FETCH_SECONDS", 0.5)  # each read is quick, the whole is not
    handler = type("Trickle", (Streamer,), {"piece": 100, "pause": 0.02})
    started = time.monotonic()
    error = fetch_from(handler, tmp_path / "input.mp4")
    assert "took over" in error
    assert time.monotonic() - started < 5
    assert not list(tmp_path.glob("input.mp4*"))


def test_it_gives_up_on_a_reference_server_that_goes_quiet(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "FETCH_TIMEOUT", httpx.Timeout(0.3))
    handler = type("Quiet", (Streamer,), {"piece": 100, "pause": 30})
    started = time.monotonic()
    error = fetch_from(handler, tmp_path / "input.mp4")
    assert "ReadTimeout" in error
    assert time.monotonic() - started < 5


@live
def test_it_refuses_new_jobs_beyond_its_cap_with_a_429(api, video_url, settings):
    settings.SIMULATOR_MAX_ACTIVE_JOBS = 2
    settings.SIMULATOR_PROCESSING_SECONDS = 60  # unfinished for the whole test
    first, second = (
        api.post(
            "/v1/videos/generations", json=generation(video_url), headers={"Idempotency-Key": k}
        )
        for k in ("cap-1", "cap-2")
    )
    assert first.status_code == second.status_code == 202

    third = api.post(
        "/v1/videos/generations", json=generation(video_url), headers={"Idempotency-Key": "cap-3"}
    )
    assert_error(third, 429, "rate_limit_error")
    assert float(third.headers["Retry-After"]) > 0
    assert len(store.job_ids()) == 2

    # A repeat of an accepted submit is not new work: it still gets its job.
    repeat = api.post(
        "/v1/videos/generations", json=generation(video_url), headers={"Idempotency-Key": "cap-1"}
    )
    assert repeat.status_code == 200 and repeat.json()["id"] == first.json()["id"]

    assert api.post(f"/v1/jobs/{first.json()['id']}/cancel").status_code == 200
    again = api.post(
        "/v1/videos/generations", json=generation(video_url), headers={"Idempotency-Key": "cap-3"}
    )
    assert again.status_code == 202, again.text


@live
def test_it_counts_jobs_as_finished_once_they_are(api, video_url, settings):
    settings.SIMULATOR_MAX_ACTIVE_JOBS = 1
    job = api.post("/v1/videos/generations", json=generation(video_url)).json()
    deadline = time.monotonic() + 30
    while api.get(f"/v1/jobs/{job['id']}").json()["status"] != "completed":
        assert time.monotonic() < deadline, "the job never completed"
        time.sleep(0.1)
    assert store.active_job_count() == 0
    assert api.post("/v1/videos/generations", json=generation(video_url)).status_code == 202


def test_it_schedules_webhooks_on_one_thread_whatever_their_number(db, settings):
    before = threading.active_count()
    for _ in range(50):
        job = store.SimJob(
            id=store.SimJob.new_id(),
            prompt="@Video1",
            duration=3,
            aspect_ratio="auto",
            keep_audio=False,
            video_url="http://127.0.0.1:1/r/x",
            webhook_url="http://127.0.0.1:1/webhooks/aigateway",
            processing_seconds=600,  # not due while we count
        )
        job.save()
        engine.schedule_webhook(job)
    assert threading.active_count() <= before + 1  # the scheduler, if it was not running


# --- 2. structure: no cycle between engine and views, a secret of its own ----------------------


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
    return found


def test_it_keeps_engine_and_views_out_of_each_others_imports():
    views, engine_, contract_ = (
        "playground.simulator.views",
        "playground.simulator.engine",
        "playground.simulator.contract",
    )
    assert views not in imported_modules(SIMULATOR / "engine.py")
    assert not {views, engine_} & imported_modules(SIMULATOR / "contract.py")
    assert contract_ in imported_modules(SIMULATOR / "engine.py")
    for path in SIMULATOR.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = [n for n in ast.walk(node) if isinstance(n, ast.Import | ast.ImportFrom)]
                assert inner == [], f"{path.name}: {node.name} imports inside itself"


@live
def test_it_signs_result_urls_with_a_secret_of_their_own(api, video_url, settings):
    assert settings.SIMULATOR_RESULT_URL_SECRET not in {"", settings.SECRET_KEY}
    job = api.post("/v1/videos/generations", json=generation(video_url)).json()
    deadline = time.monotonic() + 30
    while (body := api.get(f"/v1/jobs/{job['id']}").json())["status"] != "completed":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    url = urlsplit(body["result"]["url"])
    query = {k: v[0] for k, v in parse_qs(url.query).items()}
    message = f"sim-result:{job['id']}:{query['expires']}".encode()
    secret = settings.SIMULATOR_RESULT_URL_SECRET.encode()
    assert query["sig"] == hmac.new(secret, message, hashlib.sha256).hexdigest()

    # Anyone holding the URL downloads the file, with no key (it lives "on a CDN")...
    with httpx.Client(base_url=api.base_url.copy_with(path="/"), timeout=10) as anonymous:
        assert anonymous.get(f"{url.path}?{url.query}").status_code == 200
        # ...but a URL signed with SECRET_KEY itself is not one of ours.
        forged = hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()
        path = f"{url.path}?expires={query['expires']}&sig={forged}"
        assert anonymous.get(path).status_code == 404


@live
def test_it_restarts_a_lost_render_from_the_poll_not_from_the_body(api, monkeypatch):
    started: list[str] = []
    monkeypatch.setattr(engine, "start", started.append)
    job = store.SimJob(
        id=store.SimJob.new_id(),
        prompt="@Video1",
        duration=3,
        aspect_ratio="auto",
        keep_audio=False,
        video_url="http://127.0.0.1:1/r/x",
        created=time.time() - 3600,  # due an hour ago, and no output: its renderer died
    )
    job.save()

    body = contract.job_body(job, base_url="http://sim.test/sim")
    assert body["status"] == "processing" and started == []  # saying is not doing

    assert api.get(f"/v1/jobs/{job.id}").json()["status"] == "processing"
    assert started == [job.id]


# --- 3. 304 Not Modified --------------------------------------------------------------------------


@live
def test_it_can_answer_an_early_poll_with_an_empty_304(api, video_url):
    job = api.post("/v1/videos/generations", json=generation(video_url)).json()
    store.add_fault(on="poll", status=304)
    response = api.get(f"/v1/jobs/{job['id']}")
    assert response.status_code == 304 and response.content == b""

    store.add_fault(on="poll", status=304)
    client = gateway_from_settings(attempts=1)
    try:
        assert client.get_job(job["id"]) is None  # "unchanged", not an error
        assert client.get_job(job["id"]).id == job["id"]  # the fault was used up
    finally:
        client.close()


# --- 4. an output like the model's: 1080p at 24 fps -----------------------------------------------


@pytest.mark.parametrize(
    ("size", "aspect_ratio", "expected"),
    [
        ((320, 240), "16:9", (1920, 1080)),
        ((320, 240), "9:16", (1080, 1920)),
        ((320, 240), "1:1", (1080, 1080)),
        ((384, 216), "auto", (1920, 1080)),
        ((216, 384), "auto", (1080, 1920)),
        ((240, 240), "auto", (1080, 1080)),
        ((320, 240), "auto", (1080, 1080)),  # 4:3 is nearer square than 16:9
    ],
)
def test_it_renders_1080p_at_24_fps_in_each_aspect_ratio(tmp_path, size, aspect_ratio, expected):
    width, height = size
    source = make_video(tmp_path / "ref.mp4", width=width, height=height, seconds=1, audio=True)
    dest = tmp_path / "out.mp4"
    render.render(
        source, dest, prompt="@Video1", duration=1, aspect_ratio=aspect_ratio, keep_audio=True
    )
    facts = video.probe(dest)
    assert (facts.width, facts.height) == expected
    assert facts.fps == kling.OUTPUT_FPS == 24
    assert facts.codec == "h264" and facts.is_mp4_family and facts.has_audio
    assert abs(facts.duration - 1) < 0.1
    assert not list(tmp_path.glob("*.part*"))


def middle_frame(path: Path) -> np.ndarray:
    """The middle frame of a video, as RGB."""
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    return frames[len(frames) // 2].to_ndarray(format="rgb24").astype(int)


def test_it_fits_grades_and_stamps_the_picture(tmp_path):
    source = make_video(tmp_path / "ref.mp4", width=384, height=216, seconds=1)
    frames = {}
    for prompt in ("@Video1", "@Video1 at golden hour", "@Video1 as film noir, black and white"):
        dest = tmp_path / f"{len(frames)}.mp4"
        render.render(
            source, dest, prompt=prompt, duration=1, aspect_ratio="9:16", keep_audio=False
        )
        frames[prompt] = middle_frame(dest)
    neutral, golden, noir = frames.values()
    assert neutral.shape == (1920, 1080, 3)
    # A landscape picture in a portrait frame is padded above and below, not stretched:
    # 1080×608 in the middle.
    picture, padding = neutral[700:1200], neutral[300:600]
    assert picture.mean() > 60 and padding.max() < 30
    # The stamp: light letters on a dark strip along the top.
    strip = neutral[:60]
    assert np.median(strip) < 40 and strip.max() > 200
    # Golden hour is warmer than no grade; noir has no colour.
    warmth = [(f[700:1200, ..., 0] - f[700:1200, ..., 2]).mean() for f in (neutral, golden)]
    assert warmth[1] > warmth[0] + 10
    assert np.abs(noir[700:1200] - noir[700:1200].mean(axis=2, keepdims=True)).max() < 12


def test_it_sizes_auto_output_to_the_nearest_shape():
    assert render.output_size(3840, 2160, "auto") == (1920, 1080)
    assert render.output_size(1080, 1920, "auto") == (1080, 1920)
    assert render.output_size(720, 720, "auto") == (1080, 1080)
    assert render.output_size(1440, 1080, "auto") == (1080, 1080)  # 4:3
    assert render.output_size(2560, 1080, "auto") == (1920, 1080)  # 21:9
    assert render.output_size(720, 720, "16:9") == (1920, 1080)


@live
def test_it_keeps_one_copy_of_a_render_and_no_copy_of_the_reference(api, video_url):
    """Disk does not grow by a reference and a render per run: the reference is dropped
    once rendered, and jobs sharing a render share its file."""
    jobs = [
        api.post("/v1/videos/generations", json=generation(video_url)).json()["id"]
        for _ in range(2)
    ]
    deadline = time.monotonic() + 30
    while any(api.get(f"/v1/jobs/{job}").json()["status"] != "completed" for job in jobs):
        assert time.monotonic() < deadline, "the jobs never completed"
        time.sleep(0.1)
    outputs = [store.SimJob.load(job).output_path for job in jobs]
    assert outputs[0].stat().st_ino == outputs[1].stat().st_ino  # one file, two names
    assert not any(store.SimJob.load(job).input_path.exists() for job in jobs)

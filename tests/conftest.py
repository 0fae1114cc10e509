from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.core.cache import cache
from django.test import Client

from playground.lib import video
from playground.simulator import engine
from tests.builders import make_user
from tests.videos import make_video

CHROMIUM = "/usr/bin/chromium"
# As root, with no screen and a closed network: no sandbox, no GPU, no background fetches.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def good_video(video_dir: Path) -> Path:
    """A clip inside every limit: 960×720, 3.5 s, 24 fps, with sound."""
    return make_video(video_dir / "good.mp4", audio=True)


@pytest.fixture(autouse=True)
def isolated_files(settings, tmp_path: Path) -> Iterator[None]:
    """Each test's files apart: a MEDIA_ROOT of its own, or with a bucket (MEDIA_S3_BUCKET)
    a key prefix of its own, emptied afterwards (xdist workers share the bucket)."""
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.SIMULATOR_ROOT = tmp_path / "simulator"
    default = settings.STORAGES["default"]
    if "bucket_name" not in default.get("OPTIONS", {}):
        yield
        return
    from playground.lib.bucket import BucketStorage

    prefix = f"tests/{uuid.uuid4().hex}"
    options = {**default["OPTIONS"], "location": prefix}
    settings.STORAGES = {**settings.STORAGES, "default": {**default, "OPTIONS": options}}
    yield
    BucketStorage(**options).bucket.objects.filter(Prefix=prefix + "/").delete()


@pytest.fixture
def local_files(settings) -> None:
    """Files under MEDIA_ROOT even when the suite runs with a bucket: for the tests of what
    only local files do (our own Range answers, the instance's signed download route)."""
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "playground.lib.media.LocalMediaStorage"},
    }


@pytest.fixture
def gateway(live_server, settings):
    """Point the app at the simulator served by a real HTTP server on a loopback port."""
    settings.AIGATEWAY_BASE_URL = live_server.url + "/sim"
    settings.PUBLIC_BASE_URL = live_server.url
    return live_server


@pytest.fixture
def owner(db) -> User:
    return make_user("owner")  # password pw-owner-123


@pytest.fixture
def stranger(db) -> User:
    return make_user("stranger")  # password pw-stranger-123


@pytest.fixture
def owner_client(owner: User) -> Client:
    """A browser signed in as `owner`; the `client` fixture stays a separate, anonymous one."""
    client = Client()
    client.force_login(owner)
    return client


@pytest.fixture
def stranger_client(stranger: User) -> Client:
    """A second browser, signed in as `stranger`."""
    client = Client()
    client.force_login(stranger)
    return client


@pytest.fixture(scope="session")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small real mp4 (a few hundred KB) and a JPEG poster of it."""
    folder = tmp_path_factory.mktemp("clip")
    mp4 = make_video(folder / "clip.mp4", width=320, height=240, seconds=1)
    poster = folder / "clip.jpg"
    video.save_poster(mp4, poster)
    return mp4, poster


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    """Every test starts with an empty cache (on Redis it outlives the test otherwise), so a
    rate limit or a lock left by one never reaches the next."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def settled_simulator() -> Iterator[None]:
    """Let the simulator's render threads finish before the next test changes its root."""
    yield
    deadline = time.monotonic() + 30
    while engine._in_flight and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """The real processes (gunicorn + qcluster), one set per test module that asks."""
    from tests.stack import Stack

    stack = Stack(tmp_path_factory.mktemp("stack")).start()
    yield stack
    stack.stop()


@pytest.fixture(scope="module")
def browser():  # type: ignore[no-untyped-def]
    """Debian's chromium driven by Playwright (it cannot download browsers here)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def orm_beside_playwright() -> Iterator[None]:
    """Playwright's sync API keeps an event loop running in this thread, and Django refuses
    ORM calls from a thread with one; the calls in browser tests are plain synchronous code."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
        yield


@pytest.fixture
def owner_page(browser, live_server, owner, settings, orm_beside_playwright):  # type: ignore[no-untyped-def]
    """A page of the live server signed in as `owner` (a test client's session cookie)."""
    from tests.test_browser import VIEWPORT

    settings.PUBLIC_BASE_URL = live_server.url
    client = Client()
    client.force_login(owner)
    context = browser.new_context(base_url=live_server.url, viewport=VIEWPORT)
    context.add_cookies(
        [{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": live_server.url}]
    )
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from django.contrib.auth.models import User

from tests.videos import make_video


@pytest.fixture(scope="session")
def video_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("videos")


@pytest.fixture(scope="session")
def good_video(video_dir: Path) -> Path:
    """A clip inside every limit: 960×720, 3.5 s, 24 fps, with sound."""
    return make_video(video_dir / "good.mp4", audio=True)


@pytest.fixture(autouse=True)
def isolated_files(settings, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.SIMULATOR_ROOT = tmp_path / "simulator"


@pytest.fixture
def gateway(live_server, settings):
    """Point the app at the simulator served by a real HTTP server on a loopback port."""
    settings.AIGATEWAY_BASE_URL = live_server.url + "/sim"
    settings.PUBLIC_BASE_URL = live_server.url
    return live_server


@pytest.fixture
def owner(db) -> User:
    return User.objects.create_user("owner", password="pw-owner-123")


@pytest.fixture
def stranger(db) -> User:
    return User.objects.create_user("stranger", password="pw-stranger-123")


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


def generate_data(video: Path | None = None, **overrides: object) -> dict:
    data: dict = {
        "prompt": "@Video1 at golden hour, warm light",
        "duration": 3,
        "aspect_ratio": "auto",
        "idempotency_key": str(uuid.uuid4()),
    }
    if video is not None:
        data["reference_video"] = video.open("rb")
    data.update(overrides)
    return data

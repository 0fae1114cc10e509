"""The one home for test data: users, references and runs in each state, with real files
where a test needs them (the `clip` fixture's small MP4 and its poster)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.utils import timezone

from playground.gateway import Gateway
from playground.kling import MODEL_ID
from playground.lib import media, video
from playground.runs.models import FINAL, Reference, Run

Clip = tuple[Path, Path]  # (an MP4, a JPEG poster of it)


def make_user(username: str = "someone") -> User:
    """A user whose password is `pw-<username>-123`, for the tests that log in with it."""
    return User.objects.create_user(username, password=f"pw-{username}-123")


def make_reference(user: User, clip: Clip | None = None, **fields: Any) -> Reference:
    """A Reference row as an upload leaves it; with `clip`, its files are stored too."""
    code = uuid.uuid4()
    if clip is not None:
        media.save(f"references/{code}/original.mp4", clip[0])
        media.save(f"references/{code}/poster.jpg", clip[1])
    values: dict[str, Any] = {
        "name": clip[0].name if clip else "earlier.mp4",
        "file": f"references/{code}/original.mp4",
        "poster": f"references/{code}/poster.jpg" if clip else "",
        "format_name": video.MP4_FAMILY,
        "codec": "h264",
        "width": 320 if clip else 960,
        "height": 240 if clip else 720,
        "fps": 24,
        "duration": 1.0 if clip else 3.5,
        "size": clip[0].stat().st_size if clip else 1_000_000,
        **fields,
    }
    return Reference.objects.create(code=code, user=user, **values)


def make_facts(**changes: Any) -> video.VideoFacts:
    """What a probe says of a clip inside every limit, with `changes`."""
    base = video.VideoFacts(
        format_name=video.MP4_FAMILY,
        codec="h264",
        width=1280,
        height=720,
        fps=24.0,
        duration=5.0,
        size=1_000_000,
        has_audio=False,
    )
    return dataclasses.replace(base, **changes)


def make_run(
    user: User,
    clip: Clip | None = None,
    *,
    status: str = "completed",
    reference: Reference | None = None,
    **fields: Any,
) -> Run:
    """A run as the tracker would leave it in `status`; a completed one made with `clip` has
    its result and poster stored. Simulated when the instance runs on its simulator, as
    the Generate form makes them."""
    code = uuid.uuid4()
    now = timezone.now()
    values: dict[str, Any] = {
        "prompt": f"@Video1 as a watercolour {code.hex[:6]}",
        "duration": 3,
        "estimated_cost_micros": 504_000,
        "simulated": settings.SIMULATOR_ENABLED,
    }
    if status != "pending":
        values["submitted_at"] = now - timedelta(seconds=65)
    if status == "completed":
        values |= {
            "billed_cost_micros": 504_000,
            "billed_seconds": 3,
            "cost_source": "computed",
            "finished_at": now,
            "result_width": 320,
            "result_height": 240,
            "result_fps": 24.0,
        }
        if clip is not None:
            media.save(f"results/{code}.mp4", clip[0])
            media.save(f"results/{code}.jpg", clip[1])
            values |= {
                "result": f"results/{code}.mp4",
                "result_bytes": clip[0].stat().st_size,
                "poster": f"results/{code}.jpg",
            }
    elif status in FINAL:
        values |= {"billed_cost_micros": 0, "billed_seconds": 0, "finished_at": now}
    values.update(fields)
    return Run.objects.create(
        code=code,
        user=user,
        reference=reference or make_reference(user, clip),
        idempotency_key=uuid.uuid4(),
        status=status,
        **values,
    )


def stored_bytes(name: str) -> bytes:
    """The bytes of a stored file, on local files or in the bucket alike."""
    with default_storage.open(name, "rb") as fh:
        return fh.read()


def serves_file(response: Any) -> bool:
    """Whether a media view answered with its file: the file itself on local files, a
    redirect to a presigned URL of it with a bucket."""
    if media.is_local():
        return response.status_code == 200
    return response.status_code == 302 and "X-Amz-Signature=" in response["Location"]


def served_bytes(response: Any, headers: dict[str, str] | None = None) -> bytes:
    """What a media view's answer delivers: the streamed file, or with a bucket, the object
    its redirect points at (fetched with the same `headers`, a Range say)."""
    if response.status_code == 302:
        fetched = httpx.get(response["Location"], headers=headers or {})
        assert fetched.status_code in (200, 206), (fetched.status_code, fetched.text[:300])
        return fetched.content
    assert response.streaming, "a file must be streamed, not loaded into memory"
    return b"".join(response.streaming_content)


def is_stored(name: str) -> bool:
    return bool(name) and default_storage.exists(name)


def stored_names(folder: str = "") -> list[str]:
    """Every file stored under `folder`, as names (sorted); thumbnails and all."""
    try:
        folders, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return []
    prefix = f"{folder}/" if folder else ""
    names = [prefix + name for name in files]
    for sub in folders:
        names += stored_names(prefix + sub)
    return sorted(names)


def make_runs(user: User, reference: Reference, *statuses: str, **fields: Any) -> list[Run]:
    return [make_run(user, status=status, reference=reference, **fields) for status in statuses]


def generate_data(video_file: Path | None = None, **overrides: object) -> dict[str, Any]:
    """The Generate form's fields, as a browser posts them."""
    data: dict[str, Any] = {
        "prompt": "@Video1 at golden hour, warm light",
        "duration": 3,
        "aspect_ratio": "auto",
        "idempotency_key": str(uuid.uuid4()),
    }
    if video_file is not None:
        data["reference_video"] = video_file.open("rb")
    data.update(overrides)
    return data


SIGNUP_PASSWORD = "tall-Giraffe-8812"  # long and uncommon enough for Django's validators


def signup_data(username: str) -> dict[str, str]:
    """The Sign-up form's fields, as a browser posts them."""
    return {"username": username, "password1": SIGNUP_PASSWORD, "password2": SIGNUP_PASSWORD}


# --- The provider, scripted (only for faults the simulator cannot produce) ---------------


class ScriptedProvider:
    """A gateway that answers from a script, and logs every request it got.

    `routes` maps (method, path or host) to a function of the request giving a response;
    anything else is a 404. It plugs in at the one seam, the Gateway's httpx transport.
    """

    def __init__(self, routes: dict[tuple[str, str], Any]) -> None:
        self.routes = routes
        self.calls: list[tuple[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.calls.append((request.method, request.url.path))
        for key in ((request.method, request.url.path), (request.method, request.url.host)):
            if key in self.routes:
                answer = self.routes[key]
                return answer(request) if callable(answer) else answer
        return httpx.Response(404, json={"error": {"message": "Not found", "type": "not_found"}})

    def count(self, method: str, path: str) -> int:
        return sum(1 for call in self.calls if call == (method, path))

    def gateway(self, **options: Any) -> Gateway:
        return Gateway(
            "https://gateway.test",
            "sk-test",
            model=MODEL_ID,
            transport=httpx.MockTransport(self),
            **{"attempts": 1, "timeout": 5.0, **options},
        )

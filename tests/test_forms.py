"""The Generate form: what it refuses, what it keeps, and what it costs."""

from __future__ import annotations

import html
import io
import re
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import av
import numpy as np
import pytest
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.urls import reverse
from django.utils import timezone

from playground import kling
from playground.lib import video
from playground.runs.forms import GenerateForm
from playground.runs.models import Reference, Run
from tests.builders import (
    generate_data,
    make_facts,
    make_reference,
    make_run,
    make_runs,
    stored_bytes,
    stored_names,
)
from tests.videos import make_video

pytestmark = pytest.mark.django_db

# What every "can't be used" message ends with: the model's limits, spelled out.
LIMITS = "MP4 or MOV, 3–10.05 s, 720–2160 px, 24–60 fps, up to 200 MB"  # as the model card says


# --- Files that break one rule each, made once per session ----------------------------------


def _png(path: Path) -> Path:
    codec = av.CodecContext.create("png", "w")
    codec.width, codec.height, codec.pix_fmt = 720, 720, "rgb24"
    frame = av.VideoFrame.from_ndarray(np.full((720, 720, 3), 90, np.uint8), format="rgb24")
    path.write_bytes(b"".join(bytes(p) for p in codec.encode(frame) + codec.encode(None)))
    return path


def _jpeg(path: Path) -> Path:
    frame = av.VideoFrame.from_ndarray(np.full((720, 720, 3), 90, np.uint8), format="rgb24")
    video.write_jpeg(frame, path)
    return path


def _audio_only(path: Path) -> Path:
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=48000)
        stream.layout = "stereo"
        t0 = 0
        while t0 < 48000 * 4:
            t = (np.arange(1024) + t0) / 48000
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            frame = av.AudioFrame.from_ndarray(
                np.stack([tone, tone]), format="fltp", layout="stereo"
            )
            frame.sample_rate, frame.pts = 48000, t0
            out.mux(stream.encode(frame))
            t0 += 1024
        out.mux(stream.encode(None))
    return path


def _first_half(folder: Path) -> Path:
    """A plain mp4 (moov at the end) cut in half: the header never arrived."""
    source = make_video(folder / "half-source.mp4", width=720, height=720)
    data = source.read_bytes()
    assert data.find(b"moov") > data.find(b"mdat")  # the index really is at the end
    path = folder / "half.mp4"
    path.write_bytes(data[: len(data) // 2])
    return path


def _tail_cut(folder: Path) -> Path:
    """A faststart mp4 (moov first) missing its last 40%: the header is intact."""
    source = make_video(folder / "cut-source.mp4", width=720, height=720)
    faststart = folder / "faststart.mp4"
    with (
        av.open(str(source)) as src,
        av.open(str(faststart), "w", options={"movflags": "+faststart"}) as out,
    ):
        stream = out.add_stream_from_template(src.streams.video[0])
        for packet in src.demux(src.streams.video[0]):
            if packet.dts is None:
                continue
            packet.stream = stream
            out.mux(packet)
    data = faststart.read_bytes()
    assert 0 < data.find(b"moov") < data.find(b"mdat")  # the index comes first
    assert video.probe(faststart).duration == 3.5  # whole, it is a good file
    path = folder / "cut.mp4"
    path.write_bytes(data[: int(len(data) * 0.6)])
    return path


def _text(path: Path) -> Path:
    path.write_text("This is a shopping list, not a video.\n" * 40)
    return path


BUILDERS: dict[str, Callable[[Path], Path]] = {
    "text": lambda d: _text(d / "text.mp4"),
    "png": lambda d: _png(d / "still.png"),
    "jpeg": lambda d: _jpeg(d / "still.jpg"),
    "audio": lambda d: _audio_only(d / "sound.m4a"),
    "half": _first_half,
    "tail_cut": _tail_cut,
    "short": lambda d: make_video(d / "short.mp4", width=720, height=720, seconds=2),
    "long": lambda d: make_video(d / "long.mp4", width=720, height=720, seconds=11),
    "small": lambda d: make_video(d / "small.mp4", width=640, height=480),
    "large": lambda d: make_video(d / "large.mp4", width=2400, height=1350, seconds=3.2),
    "fps90": lambda d: make_video(d / "fps90.mp4", width=720, height=720, fps=90, seconds=3.2),
    "fps15": lambda d: make_video(d / "fps15.mp4", width=720, height=720, fps=15),
    "mkv": lambda d: make_video(d / "clip.mkv", width=720, height=720, container_format="matroska"),
    "webm": lambda d: make_video(
        d / "clip.webm", width=720, height=720, codec="libvpx-vp9", container_format="webm"
    ),
}


@pytest.fixture(scope="session")
def bad_file(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    """Build each bad file on first use and keep it for the session."""
    folder = tmp_path_factory.mktemp("bad-videos")
    cache: dict[str, Path] = {}

    def get(kind: str) -> Path:
        if kind not in cache:
            cache[kind] = BUILDERS[kind](folder)
        return cache[kind]

    return get


def media_files() -> list[str]:
    return stored_names()


def upload(path: Path, name: str) -> UploadedFile:
    """The file's bytes under the name the user's browser gives it."""
    return UploadedFile(io.BytesIO(path.read_bytes()), name=name, size=path.stat().st_size)


def selected_option(content: str, select_name: str) -> str | None:
    """The value of the selected <option> in the <select name=...>, or None."""
    match = re.search(rf'<select name="{select_name}"[^>]*>(.*?)</select>', content, re.S)
    assert match, f"no <select name={select_name}> in the page"
    chosen = re.search(r'<option value="([^"]*)"[^>]*\bselected\b', match.group(1))
    return chosen.group(1) if chosen else None


# --- Uploads the model would refuse -------------------------------------------------------

REJECTIONS = [
    # (case, name sent by the browser, fragments the message must hold)
    ("text", "notes.mp4", ["“notes.mp4”", "not a video file", "MP4 or MOV", LIMITS]),
    ("png", "still.png", ["“still.png”", "still image", "MP4 or MOV", LIMITS]),
    ("jpeg", "still.jpg", ["“still.jpg”", "still image", "MP4 or MOV", LIMITS]),
    ("audio", "sound.m4a", ["“sound.m4a”", "no video stream", "MP4 or MOV", LIMITS]),
    ("audio", "sound.mp4", ["“sound.mp4”", "no video stream", "MP4 or MOV", LIMITS]),
    ("half", "half.mp4", ["“half.mp4”", "not a video file", "MP4 or MOV", LIMITS]),
    ("tail_cut", "cut.mp4", ["“cut.mp4”", "truncated", "claims 3.50 s", "holds only", LIMITS]),
    ("short", "short.mp4", ["2.00 s long", "3–10.05 s"]),
    ("small", "small.mp4", ["640×480", "at least 720 px on each side", "upscaling would only"]),
    ("fps15", "fps15.mp4", ["15 fps", "24–60 fps"]),
]
# A conversion can fix these ("Fix it", tests/test_fixes.py): they are kept, with problems.
FIXABLE = [
    ("long", "long.mp4", ["11.00 s long", "3–10.05 s"]),
    ("large", "large.mp4", ["2400×1350", "at most 2160 px"]),
    ("fps90", "fps90.mp4", ["90 fps", "24–60 fps"]),
    ("mkv", "clip.mkv", ["Matroska", "MP4 or MOV only"]),
    ("webm", "clip.webm", ["Matroska/WebM", "MP4 or MOV only"]),
]


@pytest.mark.parametrize(
    ("case", "name", "fragments"), REJECTIONS, ids=[f"{c}-{n}" for c, n, _ in REJECTIONS]
)
def test_it_rejects_an_upload_the_model_would_refuse_and_keeps_nothing(
    owner_client, bad_file, case, name, fragments
):
    response = owner_client.post(
        reverse("generate"), generate_data(reference_video=upload(bad_file(case), name))
    )

    assert response.status_code == 200
    form = response.context["form"]
    errors = form.errors.get("reference_video", [])
    assert len(errors) == 1, form.errors
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
    assert not form.non_field_errors()
    assert "prompt" not in form.errors
    # The message is on the page, in the reference field's error box.
    content = response.content.decode()
    dropzone = content[content.index("data-dropzone") : content.index('<div class="row">')]
    assert html.escape(errors[0]) in dropzone
    assert Reference.objects.count() == 0
    assert Run.objects.count() == 0
    assert media_files() == []


@pytest.mark.parametrize(
    ("case", "name", "fragments"), FIXABLE, ids=[f"{c}-{n}" for c, n, _ in FIXABLE]
)
def test_it_keeps_an_upload_a_conversion_can_fix_and_offers_to_fix_it(
    owner_client, bad_file, case, name, fragments
):
    data = generate_data(reference_video=upload(bad_file(case), name), duration=7)
    response = owner_client.post(reverse("generate"), data)

    assert response.status_code == 200
    form = response.context["form"]
    errors = form.errors.get("reference_video", [])
    assert len(errors) == 1, form.errors
    for fragment in [*fragments, "Fix it", f"“{name}” itself is kept"]:
        assert fragment in errors[0], (fragment, errors[0])
    reference = Reference.objects.get()
    assert reference.problems and not reference.is_usable
    assert all(fragment in reference.problems for fragment in fragments)
    # "Fix it" beside the message; the kept file is not offered as a reference as it is.
    content = response.content.decode()
    dropzone = content[content.index("data-dropzone") : content.index('<div class="row">')]
    assert html.escape(errors[0]) in dropzone
    assert f'href="{reverse("reference_fix", args=[reference.code])}"' in dropzone
    assert str(reference.code) not in content[content.index('<select name="reference"') :]
    assert selected_option(content, "duration") == "7"  # the settings stay as typed
    assert data["prompt"] in content
    assert Run.objects.count() == 0
    assert {Path(name).name for name in media_files()} >= {
        "poster.jpg",
        Path(reference.file.name).name,
    }


def test_it_names_the_size_limit_and_the_size_of_a_file_over_200_mb():
    facts = make_facts(size=201 * 1024 * 1024)

    assert video.reference_problems(facts) == [
        video.Problem("The file is 201 MB; the limit is 200 MB.", fixable=False)
    ]
    within = make_facts(size=200 * 1024 * 1024)
    assert video.reference_problems(within) == []


def test_it_refuses_an_upload_declared_over_200_mb_before_reading_it(owner):
    big = UploadedFile(io.BytesIO(b"\0" * 16), name="huge.mp4", size=201 * 1024 * 1024)
    form = GenerateForm(generate_data(), {"reference_video": big}, user=owner)

    assert not form.is_valid()
    assert form.errors["reference_video"] == ["The file is 201 MB; the limit is 200 MB."]
    assert Reference.objects.count() == 0
    assert media_files() == []


# --- The prompt ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prompt", "message"),
    [
        ("", "Write a prompt"),
        ("   \n\t  ", "Write a prompt"),
        ("x" * 2501, "at most 2500 characters (it has 2501)"),
    ],
    ids=["empty", "whitespace", "too-long"],
)
def test_it_rejects_a_bad_prompt_and_keeps_what_was_typed(owner_client, prompt, message):
    data = generate_data(prompt=prompt, duration=7, aspect_ratio="9:16", keep_audio="on")
    response = owner_client.post(reverse("generate"), data)

    assert response.status_code == 200
    form = response.context["form"]
    assert any(message in e for e in form.errors["prompt"]), form.errors
    content = response.content.decode()
    assert html.escape(form.errors["prompt"][0]) in content
    assert selected_option(content, "duration") == "7"
    assert selected_option(content, "aspect_ratio") == "9:16"
    assert re.search(r'<input type="checkbox" name="keep_audio"[^>]*checked', content)
    assert f'value="{data["idempotency_key"]}"' in content
    assert re.search(r'<output id="estimate"[^>]*>\$1\.176</output>', content)  # 7 s
    if prompt.strip():
        assert prompt in content  # the long prompt is still there to be shortened
    assert Run.objects.count() == 0


def test_it_keeps_a_good_upload_when_the_prompt_fails_so_it_is_never_sent_twice(
    owner_client, good_video
):
    first = generate_data(good_video, prompt="  ", duration=4, aspect_ratio="16:9")
    response = owner_client.post(reverse("generate"), first)

    assert response.status_code == 200
    assert "prompt" in response.context["form"].errors
    assert Run.objects.count() == 0
    reference = Reference.objects.get()
    assert reference.name == good_video.name
    assert (reference.width, reference.height, reference.duration) == (960, 720, 3.5)
    assert stored_bytes(reference.file.name) == good_video.read_bytes()
    assert default_storage.size(reference.poster.name) > 0
    content = response.content.decode()
    assert selected_option(content, "reference") == str(reference.code)
    assert selected_option(content, "duration") == "4"
    assert selected_option(content, "aspect_ratio") == "16:9"

    # The user fixes the prompt and sends the form again, without a file.
    second = generate_data(
        prompt="@Video1 in the snow",
        duration=4,
        aspect_ratio="16:9",
        reference=str(reference.code),
        idempotency_key=first["idempotency_key"],
    )
    response = owner_client.post(reverse("generate"), second)

    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    assert run.reference == reference
    assert (run.prompt, run.duration, run.aspect_ratio) == ("@Video1 in the snow", 4, "16:9")
    assert run.estimated_cost_micros == 4 * 168_000
    assert Reference.objects.count() == 1


def test_it_asks_for_a_reference_when_none_is_given(owner_client):
    response = owner_client.post(reverse("generate"), generate_data())

    assert response.status_code == 200
    assert response.context["form"].errors["reference_video"] == [
        "Choose a reference video to guide the shot."
    ]
    assert Run.objects.count() == 0


def test_it_does_not_offer_or_accept_another_users_reference(
    owner_client, stranger_client, owner, stranger, good_video
):
    owner_client.post(reverse("generate"), generate_data(good_video))
    theirs = Reference.objects.get(user=owner)

    page = stranger_client.get(reverse("generate")).content.decode()
    assert str(theirs.code) not in page
    response = stranger_client.post(reverse("generate"), generate_data(reference=str(theirs.code)))

    assert response.status_code == 200
    assert "reference" in response.context["form"].errors
    assert not Run.objects.filter(user=stranger).exists()


# --- Idempotency --------------------------------------------------------------------------


def test_it_makes_one_run_from_a_form_sent_twice(owner_client, good_video):
    key = str(uuid.uuid4())
    first = owner_client.post(reverse("generate"), generate_data(good_video, idempotency_key=key))
    second = owner_client.post(reverse("generate"), generate_data(good_video, idempotency_key=key))

    run = Run.objects.get()
    assert str(run.idempotency_key) == key
    assert first.status_code == 302 and first["Location"] == run.get_absolute_url()
    assert second.status_code == 302 and second["Location"] == run.get_absolute_url()
    assert Reference.objects.count() == 1  # the resent file was not stored again


def test_it_answers_an_htmx_post_with_a_client_redirect(owner_client, good_video):
    response = owner_client.post(
        reverse("generate"), generate_data(good_video), headers={"HX-Request": "true"}
    )

    run = Run.objects.get()
    assert response.status_code == 200
    assert response["HX-Redirect"] == run.get_absolute_url()


# --- The estimate and "try again" ---------------------------------------------------------


def test_it_shows_the_estimate_for_the_default_five_seconds(owner_client):
    response = owner_client.get(reverse("generate"))

    content = response.content.decode()
    assert response.status_code == 200
    assert re.search(r'<output id="estimate"[^>]*>\$0\.840</output>', content)
    assert selected_option(content, "duration") == "5"
    assert re.search(r'name="idempotency_key" value="[0-9a-f-]{36}"', content)


def test_it_prefills_the_form_from_an_earlier_run(owner_client, owner):
    reference = make_reference(owner)
    run = make_run(
        owner,
        status="failed",
        reference=reference,
        prompt="@Video1 under neon rain",
        duration=7,
        aspect_ratio="9:16",
        keep_audio=True,
    )

    response = owner_client.get(reverse("generate"), {"from": str(run.code)})

    content = response.content.decode()
    assert "@Video1 under neon rain</textarea>" in content
    assert selected_option(content, "duration") == "7"
    assert selected_option(content, "aspect_ratio") == "9:16"
    assert selected_option(content, "reference") == str(reference.code)
    assert re.search(r'<input type="checkbox" name="keep_audio"[^>]*checked', content)
    assert re.search(r'<output id="estimate"[^>]*>\$1\.176</output>', content)
    assert f'value="{run.idempotency_key}"' not in content  # a new form, a new key


def test_it_does_not_prefill_from_another_users_run(stranger_client, owner):
    run = make_run(owner, status="failed", prompt="@Video1 secret plans", duration=7)

    response = stranger_client.get(reverse("generate"), {"from": str(run.code)})

    assert response.status_code == 200
    assert "secret plans" not in response.content.decode()
    assert selected_option(response.content.decode(), "duration") == "5"


# --- The provider must be able to fetch the reference --------------------------------------


@pytest.mark.parametrize(
    "public_base_url",
    ["", "http://127.0.0.1:8000", "http://192.168.1.5", "http://100.64.1.2", "http://web:8000"],
    ids=["unset", "loopback", "private", "carrier-nat", "single-label"],
)
def test_it_refuses_when_a_remote_gateway_could_not_fetch_the_reference(
    owner_client, settings, good_video, public_base_url, local_files
):
    """On local files the provider fetches from us (a bucket: tests/test_storage.py)."""
    settings.AIGATEWAY_BASE_URL = "https://api.aigateway.sh"
    settings.PUBLIC_BASE_URL = public_base_url

    response = owner_client.post(reverse("generate"), generate_data(good_video))

    assert response.status_code == 200
    errors = response.context["form"].non_field_errors()
    assert len(errors) == 1 and "PUBLIC_BASE_URL" in errors[0]
    if public_base_url:
        assert public_base_url in errors[0]
    assert html.escape(errors[0]) in response.content.decode()
    assert Run.objects.count() == 0


def test_it_accepts_a_public_base_url_for_a_remote_gateway(
    owner_client, settings, good_video, local_files
):
    settings.AIGATEWAY_BASE_URL = "https://api.aigateway.sh"
    settings.PUBLIC_BASE_URL = "https://play.example.com"

    response = owner_client.post(reverse("generate"), generate_data(good_video))

    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    assert run.status == "pending" and run.provider_job_id == ""


# --- Limits per user ----------------------------------------------------------------------


def test_it_refuses_a_run_over_the_in_flight_cap(owner_client, owner, settings):
    settings.MAX_INFLIGHT_RUNS_PER_USER = 2
    reference = make_reference(owner)
    make_runs(owner, reference, "queued", "processing", "completed", "failed")

    response = owner_client.post(reverse("generate"), generate_data(reference=str(reference.code)))

    assert response.status_code == 200
    errors = response.context["form"].non_field_errors()
    assert errors == [
        "You already have 2 runs in progress, the most allowed at once. "
        "Wait for one to finish or cancel one."
    ]
    assert html.escape(errors[0]) in response.content.decode()
    assert Run.objects.count() == 4


def test_it_counts_only_the_users_own_live_runs_against_the_cap(
    owner_client, owner, stranger, settings
):
    settings.MAX_INFLIGHT_RUNS_PER_USER = 2
    reference = make_reference(owner)
    make_runs(owner, reference, "queued", "completed", "cancelled", "timed_out")
    make_runs(stranger, make_reference(stranger), "queued", "processing")

    response = owner_client.post(reverse("generate"), generate_data(reference=str(reference.code)))

    assert response.status_code == 302
    assert Run.objects.filter(user=owner).count() == 5


def test_it_refuses_a_run_the_monthly_budget_cannot_pay_for(owner_client, owner, settings):
    settings.MONTHLY_BUDGET_USD = "1.00"
    reference = make_reference(owner)
    # $0.504 billed this month: $0.496 is left, less than a 3 s run's $0.504.
    make_runs(owner, reference, "completed", billed_cost_micros=504_000)

    page = owner_client.get(reverse("generate")).content.decode()
    assert re.search(r'id="budget-left">Budget left this month: \$0\.496<', page)
    response = owner_client.post(
        reverse("generate"), generate_data(reference=str(reference.code), duration=3)
    )

    assert response.status_code == 200
    errors = response.context["form"].non_field_errors()
    assert errors == ["This run would cost $0.504, but only $0.496 of this month's budget is left."]
    assert html.escape(errors[0]) in response.content.decode()
    assert Run.objects.count() == 1


def test_it_counts_live_runs_estimates_against_the_budget(owner_client, owner, settings):
    settings.MONTHLY_BUDGET_USD = "1.00"
    reference = make_reference(owner)
    make_runs(owner, reference, "queued", estimated_cost_micros=840_000)

    response = owner_client.post(
        reverse("generate"), generate_data(reference=str(reference.code), duration=3)
    )

    assert response.status_code == 200
    assert response.context["form"].non_field_errors() == [
        "This run would cost $0.504, but only $0.160 of this month's budget is left."
    ]
    assert Run.objects.count() == 1


def test_it_accepts_a_run_within_the_budget(owner_client, owner, settings):
    settings.MONTHLY_BUDGET_USD = "1.00"
    reference = make_reference(owner)

    refused = owner_client.post(
        reverse("generate"), generate_data(reference=str(reference.code), duration=6)
    )
    accepted = owner_client.post(
        reverse("generate"), generate_data(reference=str(reference.code), duration=5)
    )

    assert refused.status_code == 200
    assert "$1.008" in refused.context["form"].non_field_errors()[0]
    assert accepted.status_code == 302
    assert Run.objects.get().estimated_cost_micros == 840_000


@pytest.mark.parametrize("limit", ["budget", "in-flight"])
def test_it_keeps_a_good_upload_when_a_limit_refuses_the_run(
    owner_client, owner, settings, good_video, limit
):
    earlier = make_reference(owner)
    if limit == "budget":
        settings.MONTHLY_BUDGET_USD = "1.00"
        make_runs(owner, earlier, "completed", billed_cost_micros=840_000)
    else:
        settings.MAX_INFLIGHT_RUNS_PER_USER = 1
        make_runs(owner, earlier, "queued")

    response = owner_client.post(reverse("generate"), generate_data(good_video))

    assert response.status_code == 200
    assert response.context["form"].non_field_errors()  # refused, with its reason
    assert Run.objects.count() == 1
    uploaded = Reference.objects.exclude(pk=earlier.pk).get()
    assert uploaded.name == good_video.name
    # Once the limit lifts, the user picks the stored upload instead of sending it again.
    assert selected_option(response.content.decode(), "reference") == str(uploaded.code)


def test_it_counts_only_this_months_spending_of_this_user_against_the_budget(
    owner_client, owner, stranger, settings
):
    settings.MONTHLY_BUDGET_USD = "1.00"
    reference = make_reference(owner)
    first_of_month = timezone.now().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    make_runs(
        owner,
        reference,
        "completed",
        billed_cost_micros=900_000,
        created_at=first_of_month - timedelta(days=1),
    )
    make_runs(stranger, make_reference(stranger), "completed", billed_cost_micros=900_000)

    response = owner_client.post(
        reverse("generate"), generate_data(reference=str(reference.code), duration=5)
    )

    assert response.status_code == 302
    assert Run.objects.filter(user=owner).count() == 2


@pytest.mark.parametrize("duration", ["²", "9" * 5000, "٣", "-1", ""])
def test_it_answers_a_hostile_duration_with_the_form_not_an_error(owner_client, duration):
    response = owner_client.post(reverse("generate"), generate_data(duration=duration))
    assert response.status_code == 200
    expected = "Select a valid choice" if duration else "This field is required"
    assert expected in html.unescape(response.content.decode())


def test_it_counts_a_line_break_as_one_character_as_the_page_does(owner_client, owner, clip):
    # 2,500 characters as the page counts them (and maxlength limits them), of which 99 are
    # line breaks: the browser sends each as CR LF, 2,599 characters on the wire.
    lines = ["@Video1 " + "x" * 16] * 100
    prompt = "\n".join(lines)
    prompt += "z" * (kling.PROMPT_MAX_CHARS - len(prompt))
    reference = make_reference(owner, clip)
    response = owner_client.post(
        reverse("generate"),
        generate_data(prompt=prompt.replace("\n", "\r\n"), reference=str(reference.code)),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Run.objects.get(user=owner).prompt == prompt


def test_the_file_picker_offers_the_formats_fix_it_converts(owner_client):
    field = re.search(r'<input[^>]*id="id_reference_video"[^>]*>', owner_client.get("/").text)
    assert field is not None
    accept = re.search(r'accept="([^"]*)"', field.group(0))
    assert accept is not None
    for kind in (".mp4", ".mov", ".mkv", ".webm", ".avi", "video/webm"):
        assert kind in accept.group(1).split(","), kind

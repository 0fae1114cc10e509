""" "Fix it": a reference the model would refuse is kept and converted into one it takes."""

from __future__ import annotations

import html
import itertools
import re
import threading
from collections.abc import Iterator
from datetime import timedelta
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.urls import reverse

from playground.lib import conform, media, video
from playground.runs import fixes
from playground.runs.models import FixStatus, Reference, ReferenceFix
from tests.builders import generate_data, make_facts, make_reference, stored_bytes, stored_names

pytestmark = pytest.mark.django_db

LONG_PROBLEM = "The video is 14.00 s long; it must be 3–10.05 s."


def quick_video(
    path: Path,
    *,
    width: int = 720,
    height: int = 720,
    seconds: float,
    fps: int = 24,
    codec: str = "libx264",
    container_format: str | None = None,
    audio: bool = False,
    audio_seconds: float | None = None,
    starts_at: float = 0,
) -> Path:
    """A clip made fast: eight pictures in turn (a bar that grows), so encoding is cheap.
    Its sound, if any, lasts `audio_seconds` (as long as the picture unless given). Its
    timestamps begin at `starts_at` seconds (a camcorder's transport stream: hours in)."""
    looks = []
    for i in range(8):
        img = np.zeros((height, width, 3), np.uint8)
        img[:, : width * (i + 1) // 8, 1] = 200
        looks.append(av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p"))
    with av.open(str(path), "w", format=container_format) as out:
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {
            "libx264": {"preset": "ultrafast"},
        }.get(codec, {})
        # Low-rate mono sound: what matters is that there is some, and AAC takes its time.
        sound = out.add_stream("aac", rate=8000, layout="mono") if audio else None
        for i in range(round(seconds * fps)):
            frame = looks[i % 8]
            frame.pts, frame.time_base = i + round(starts_at * fps), Fraction(1, fps)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
        if sound is not None:
            tone = (0.2 * np.sin(np.arange(1024) / 8)).astype(np.float32)[None, :]
            chunk = av.AudioFrame.from_ndarray(tone, format="fltp", layout="mono")
            chunk.sample_rate = 8000
            heard = seconds if audio_seconds is None else audio_seconds
            for t0 in range(0, int(heard * 8000), 1024):
                chunk.pts = t0 + round(starts_at * 8000)
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path


@pytest.fixture(scope="session")
def fix_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fix-videos")


@pytest.fixture(scope="session")
def long_clip(fix_dir: Path) -> Path:
    """14 s, 720×720, 24 fps, with sound: too long, and only that."""
    return quick_video(fix_dir / "long.mp4", seconds=14, audio=True)


@pytest.fixture(scope="session")
def mkv_clip(fix_dir: Path) -> Path:
    """MPEG-4 Part 2 in Matroska: another container, and a codec browsers can't play (it
    encodes far faster than VP8/VP9 in WebM, which would make the same point)."""
    return quick_video(
        fix_dir / "clip.mkv", seconds=3.2, codec="mpeg4", container_format="matroska"
    )


def probe_stored(name: str) -> video.VideoFacts:
    with media.local_copy(name) as path:
        return video.probe(path)


def upload_through_the_form(client, path: Path, **fields: object):
    with path.open("rb") as fh:
        return client.post(reverse("generate"), generate_data(reference_video=fh, **fields))


def problem_reference(owner, path: Path, poster: Path | None = None, **fields: object) -> Reference:
    """A reference kept with problems, its file stored, as an upload leaves it."""
    facts = video.probe(path)
    if poster is None:
        poster = path.with_suffix(".jpg")
        video.save_poster(path, poster)
    values = {
        "name": path.name,
        "format_name": facts.format_name,
        "codec": facts.codec,
        "width": facts.width,
        "height": facts.height,
        "fps": facts.fps,
        "duration": facts.duration,
        "size": facts.size,
        "has_audio": facts.has_audio,
        "problems": " ".join(map(str, video.reference_problems(facts))),
        **fields,
    }
    return make_reference(owner, (path, poster), **values)


# --- Which problems a conversion can fix ------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "fixable", "fragment"),
    [
        ({"duration": 14.0}, True, "14.00 s long"),
        ({"width": 2400, "height": 1350}, True, "2400×1350; each side must be at most 2160 px"),
        ({"fps": 120.0}, True, "120 fps"),
        ({"format_name": "matroska,webm", "codec": "vp9"}, True, "MP4 or MOV only"),
        ({"duration": 2.0}, False, "2.00 s long"),
        ({"fps": 15.0}, False, "15 fps"),
        (
            {"width": 640, "height": 360},
            False,
            "640×360; the model needs at least 720 px on each side, and upscaling would only "
            "hide the problem.",
        ),
        # Scaled down to 2160 px wide it would be 2160×676: too small to be fixed so.
        ({"width": 2300, "height": 720}, False, "2160×676, under 720 px"),
    ],
    ids=["long", "big", "fast", "webm", "short", "slow", "small", "too-wide"],
)
def test_it_tells_the_problems_a_conversion_can_fix_from_the_others(changes, fixable, fragment):
    [problem] = video.reference_problems(make_facts(**changes))
    assert fragment in problem.message
    assert problem.fixable is fixable


def test_it_refuses_a_640x360_upload_with_the_upscaling_message_and_keeps_nothing(
    owner_client, fix_dir
):
    small = quick_video(fix_dir / "small.mp4", width=640, height=360, seconds=3.2)
    response = upload_through_the_form(owner_client, small)

    [message] = response.context["form"].errors["reference_video"]
    assert "640×360; the model needs at least 720 px on each side" in message
    assert "upscaling would only hide the problem" in message
    assert "Fix it" not in response.content.decode()
    assert not Reference.objects.exists()
    assert stored_names() == []


# --- The whole flow: a 14 s clip, trimmed ------------------------------------------------


def test_it_trims_a_too_long_upload_into_a_new_reference_and_keeps_the_original(
    owner_client, long_clip, django_capture_on_commit_callbacks
):
    response = upload_through_the_form(owner_client, long_clip, prompt="@Video1 in the rain")
    original = Reference.objects.get()
    assert original.problems == LONG_PROBLEM
    fix_url = reverse("reference_fix", args=[original.code])
    assert f'href="{fix_url}"' in response.content.decode()

    page = owner_client.get(fix_url).content.decode()
    assert LONG_PROBLEM in page
    assert re.search(r'<input type="range"[^>]*name="start"[^>]*max="14.000"', page)
    assert re.search(r'<input type="range"[^>]*name="end"[^>]*value="10.0"', page)
    assert f'src="{reverse("reference_video", args=[original.code])}"' in page

    with django_capture_on_commit_callbacks(execute=True):
        posted = owner_client.post(fix_url, {"start": "3.0", "end": "10.0"})
    fix = ReferenceFix.objects.get()
    assert posted.status_code == 302 and posted.url == reverse("fix_progress", args=[fix.code])
    assert fix.status == FixStatus.DONE and fix.progress == 1
    copy = fix.result
    assert copy.name == "long (3.0–10.0 s).mp4"
    assert copy.derived_from == original and copy.problems == "" and copy.is_usable
    assert abs(copy.duration - 7.0) < 0.1
    assert copy.has_audio and copy.poster
    made = probe_stored(copy.file.name)
    assert made.codec == "h264" and made.is_mp4_family and not video.reference_problems(made)
    # The original is kept as it was.
    assert stored_bytes(original.file.name) == long_clip.read_bytes()
    assert Reference.objects.filter(pk=original.pk, problems=LONG_PROBLEM).exists()

    progress = owner_client.get(posted.url).content.decode()
    use = f"{reverse('generate')}?reference={copy.code}"
    assert "Use this clip" in progress and f'href="{use}"' in progress
    form = owner_client.get(use).content.decode()
    assert re.search(rf'<option value="{copy.code}"[^>]*selected', form)


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        ("3.0", "5.5", "is 2.5 s long; pick 3–10 s"),
        ("1.0", "11.5", "is 10.5 s long; pick 3–10 s"),
        ("10.0", "15.0", "not within the video's 0–14.0 s"),
        ("", "", "Pick the segment to keep"),
    ],
    ids=["short", "long", "outside", "missing"],
)
def test_it_refuses_a_segment_outside_3_to_10_s(owner_client, owner, start, end, message):
    reference = make_reference(owner, duration=14.0, width=720, height=720, problems=LONG_PROBLEM)

    response = owner_client.post(
        reverse("reference_fix", args=[reference.code]), {"start": start, "end": end}
    )

    assert response.status_code == 200
    assert message in html.unescape(response.content.decode())
    assert not ReferenceFix.objects.exists()


def test_it_refuses_a_fix_past_the_storage_quota(owner, settings):
    settings.USER_STORAGE_QUOTA_MB = 1
    reference = make_reference(owner, duration=14.0, size=900_000, problems=LONG_PROBLEM)

    with pytest.raises(fixes.FixRefused, match="past your storage quota"):
        fixes.start_fix(reference, 0.0, 10.0)  # ~640 KB more than the 900 KB already used
    assert not ReferenceFix.objects.exists()


# --- The conversions --------------------------------------------------------------------


def test_it_brings_a_clip_above_60_fps_to_30_by_timestamps(fix_dir, tmp_path):
    fast = quick_video(fix_dir / "fast.mp4", seconds=1, fps=120)
    seen: list[float] = []

    made = conform.conform(fast, tmp_path / "out.mp4", start=0, end=None, progress=seen.append)

    assert made.fps == 30 and abs(made.duration - 1.0) < 0.05
    with av.open(str(tmp_path / "out.mp4")) as container:
        times = [frame.time for frame in container.decode(video=0)]
    assert len(times) == 30
    assert all(abs(b - a - 1 / 30) < 1e-3 for a, b in itertools.pairwise(times))
    assert seen == sorted(seen) and seen[-1] == 1.0


def test_it_scales_a_side_over_2160_px_down_keeping_the_aspect(fix_dir, tmp_path):
    wide = quick_video(fix_dir / "wide.mp4", width=2200, height=740, seconds=0.25)

    made = conform.conform(wide, tmp_path / "out.mp4", start=0, end=None, progress=lambda _: None)

    assert (made.width, made.height) == (2160, 726)  # 740 × 2160/2200, made even


def test_it_keeps_an_mkv_upload_with_a_preview_and_re_encodes_it_to_h264_mp4(
    owner_client, owner, mkv_clip, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        upload_through_the_form(owner_client, mkv_clip)
    original = Reference.objects.get()
    assert "MP4 or MOV only" in original.problems
    assert original.poster and original.preview  # the page can show and play it

    with django_capture_on_commit_callbacks(execute=True):
        fix = fixes.start_fix(original, None, None)
    fix.refresh_from_db()

    assert fix.status == FixStatus.DONE, fix.error_message
    assert fix.start == 0 and fix.end is None
    assert fix.result.name == "clip (H.264).mp4"
    made = probe_stored(fix.result.file.name)
    assert made.codec == "h264" and made.is_mp4_family and not video.reference_problems(made)


class CountingInput:
    """An input container that counts the packets read from it."""

    def __init__(self, container: Any) -> None:
        self.container, self.packets = container, 0

    def __enter__(self) -> CountingInput:
        self.container.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.container.__exit__(*exc)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.container, name)

    def demux(self, *streams: Any) -> Iterator[Any]:
        for packet in self.container.demux(*streams):
            self.packets += 1
            yield packet


def test_a_segment_reads_little_past_its_end_when_the_sound_stops_early(
    fix_dir, tmp_path, monkeypatch
):
    # 10 s of picture and half a second of sound: the sound's end past the segment's is
    # never seen, which once kept the worker decoding to the end of the file.
    source = quick_video(
        fix_dir / "quiet.mp4", width=160, height=120, seconds=10, audio=True, audio_seconds=0.5
    )
    opened: list[CountingInput] = []
    real_open = av.open

    def counting_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        container = real_open(path, *args, **kwargs)
        if args or kwargs.get("mode") == "w" or "format" in kwargs:
            return container  # the output
        opened.append(CountingInput(container))
        return opened[-1]

    monkeypatch.setattr(av, "open", counting_open)
    conform.transcode(source, tmp_path / "out.mp4", width=160, height=120, start=0, end=2.0)
    monkeypatch.undo()

    reads = max(reading.packets for reading in opened)
    assert reads < 24 * (2 + conform.PAST_END_SECONDS + 0.5) + 30, reads  # not ~260
    assert abs(video.probe(tmp_path / "out.mp4").duration - 2.0) < 0.1


def understated(path: Path, seconds: float) -> Path:
    """The clip with its track header (mdhd) claiming `seconds`: a forged length."""
    data = bytearray(path.read_bytes())
    at = data.index(b"mdhd") + 4  # version (0: 32-bit fields), flags, created, modified
    timescale = int.from_bytes(data[at + 12 : at + 16], "big")
    data[at + 16 : at + 20] = int(seconds * timescale).to_bytes(4, "big")
    forged = path.with_name("forged-" + path.name)
    forged.write_bytes(bytes(data))
    return forged


def test_a_header_that_understates_the_video_is_refused_and_bounds_a_conversion(fix_dir, tmp_path):
    source = understated(quick_video(fix_dir / "ten.mp4", width=160, height=120, seconds=10), 2)
    with pytest.raises(video.UnreadableVideo, match=r"its header says 2\.00 s but it holds 10"):
        video.probe(source)
    # Converted whole anyway (what the header says is all a conversion goes by), it stops
    # soon after the claimed end instead of writing all that is there.
    conform.transcode(source, tmp_path / "out.mp4", width=160, height=120)
    assert video.probe(tmp_path / "out.mp4").duration < 2 + conform.PAST_END_SECONDS + 0.2


def test_it_converts_a_camcorders_mpeg_ts_clip_to_mp4(owner, fix_dir):
    mts = quick_video(
        fix_dir / "camcorder.mts", width=1280, height=720, seconds=3.5, container_format="mpegts"
    )
    reference = problem_reference(owner, mts)
    assert "The file is MPEG-TS (.mts/.m2ts/.ts); the model takes MP4 or MOV only." in (
        reference.problems
    )
    fix = fixes.start_fix(reference, None, None)
    fixes.run_fix(fix.pk)
    fix.refresh_from_db()
    assert fix.status == FixStatus.DONE, fix.error_message
    made = probe_stored(fix.result.file.name)
    assert made.codec == "h264" and made.is_mp4_family and not video.reference_problems(made)
    # A segment of it too: a transport stream has no index to seek by, and its one
    # keyframe is at the start; it is read from there.
    part = fix_dir / "segment.mp4"
    conform.transcode(mts, part, width=640, height=360, start=1.0, end=3.0)
    assert abs(video.probe(part).duration - 2.0) < 0.1


@pytest.mark.parametrize("starts_at", [1.4, 3600.0])
def test_it_reads_a_transport_stream_that_starts_late_from_its_first_frame(
    fix_dir, tmp_path, starts_at
):
    mts = quick_video(
        fix_dir / f"late-{starts_at:g}.mts", width=320, height=240, seconds=4,
        container_format="mpegts", audio=True, starts_at=starts_at,
    )  # fmt: skip
    whole, part = tmp_path / "whole.mp4", tmp_path / "part.mp4"
    conform.transcode(mts, whole, width=320, height=240)
    assert abs(video.probe(whole).duration - 4.0) < 0.1  # every frame, none lost
    conform.transcode(mts, part, width=320, height=240, start=1.0, end=3.0)
    assert abs(video.probe(part).duration - 2.0) < 0.1


def test_it_converts_once_when_the_task_is_delivered_twice(owner, mkv_clip, tmp_path):
    reference = problem_reference(owner, mkv_clip)
    fix = fixes.start_fix(reference, None, None)  # its on_commit never runs here

    first = fixes.run_fix(fix.pk)
    again = fixes.run_fix(fix.pk)

    assert first.startswith(f"fix {fix.code} made")
    assert again == "nothing to do"
    assert Reference.objects.filter(derived_from=reference).count() == 1
    # Asked again for the same fix (a double-click), it finds the one it made.
    assert fixes.start_fix(reference, None, None) == fix


def test_it_converts_again_once_the_copy_was_deleted(owner, owner_client, mkv_clip):
    reference = problem_reference(owner, mkv_clip)
    fix = fixes.start_fix(reference, None, None)
    fixes.run_fix(fix.pk)
    fix.refresh_from_db()
    owner_client.post(reverse("reference_delete", args=[fix.result.code]))
    assert not Reference.objects.filter(derived_from=reference).exists()

    again = fixes.start_fix(reference, None, None)
    assert again.pk != fix.pk and again.status == FixStatus.QUEUED  # not an empty "Done"


def test_it_writes_its_progress_to_the_row_as_it_goes(owner, mkv_clip, monkeypatch):
    monkeypatch.setattr(fixes, "PROGRESS_EVERY_SECONDS", 0)  # every frame, for the test
    reference = problem_reference(owner, mkv_clip)
    fix = fixes.start_fix(reference, None, None)
    seen: list[float] = []
    write = ReferenceFix.record_progress

    def record(self: ReferenceFix, fraction: float) -> None:
        write(self, fraction)
        seen.append(ReferenceFix.objects.get(pk=self.pk).progress)  # what the page polls

    monkeypatch.setattr(ReferenceFix, "record_progress", record)
    fixes.run_fix(fix.pk)

    assert len(seen) > 10 and seen == sorted(seen)
    assert 0 < seen[len(seen) // 2] < 1
    assert ReferenceFix.objects.get(pk=fix.pk).progress == 1


def test_it_says_why_a_conversion_failed_and_keeps_the_original(owner, mkv_clip, tmp_path):
    reference = problem_reference(owner, mkv_clip)
    # Damaged in storage since it was checked.
    default_storage.save(reference.file.name, ContentFile(b"no longer a video"))

    fix = fixes.start_fix(reference, None, None)
    fixes.run_fix(fix.pk)
    fix.refresh_from_db()

    assert fix.status == FixStatus.FAILED
    assert "The conversion failed" in fix.error_message and "is kept as it was" in fix.error_message
    assert list(Reference.objects.all()) == [reference]
    assert default_storage.listdir("references")[0] == [str(reference.code)]


# --- The pages --------------------------------------------------------------------------


def test_it_polls_the_progress_and_stops_when_the_fix_is_done(owner_client, owner, clip):
    source = make_reference(owner, clip, problems=LONG_PROBLEM, duration=14.0)
    copy = make_reference(owner, clip, derived_from=source, name="clip (3.0–10.0 s).mp4")
    fix = ReferenceFix.objects.create(
        user=owner, source=source, start=3, end=10, status=FixStatus.RUNNING, progress=0.4
    )
    url = reverse("fix_progress", args=[fix.code])

    running = owner_client.get(url, headers={"HX-Request": "true"})
    assert running.status_code == 200
    body = running.content.decode()
    assert 'hx-trigger="every 1s"' in body and '<progress id="fix-bar' in body
    assert 'value="40"' in body and "<html" not in body

    fix.record_progress(0.8)
    fix.finish(copy)
    done = owner_client.get(url, headers={"HX-Request": "true"})
    assert done.status_code == 286  # stops htmx polling
    body = done.content.decode()
    assert "hx-trigger" not in body and "Use this clip" in body
    assert f'data-use-reference="{copy.code}"' in body


def test_it_opens_the_fix_as_a_fragment_for_the_generate_pages_dialog(owner_client, owner):
    reference = make_reference(owner, duration=14.0, problems=LONG_PROBLEM)

    page = owner_client.get(
        reverse("reference_fix", args=[reference.code]), headers={"HX-Request": "true"}
    )

    body = page.content.decode()
    assert body.lstrip().startswith('<div class="fix-panel" data-fix-panel>')
    assert "<html" not in body and 'name="start"' in body


def test_it_never_offers_or_takes_a_reference_with_problems(owner_client, owner):
    broken = make_reference(owner, problems=LONG_PROBLEM, duration=14.0)
    good = make_reference(owner)

    page = owner_client.get(reverse("generate")).content.decode()
    assert str(good.code) in page and str(broken.code) not in page
    response = owner_client.post(reverse("generate"), generate_data(reference=str(broken.code)))
    assert "Select a valid choice" in str(response.context["form"].errors["reference"])
    assert not broken.runs.exists()


def test_it_lists_problems_fix_it_and_fixed_copies_in_the_library(owner_client, owner):
    broken = make_reference(owner, name="long.mp4", problems=LONG_PROBLEM, duration=14.0)
    make_reference(owner, name="long (3.0–10.0 s).mp4", derived_from=broken)

    page = owner_client.get(reverse("references")).content.decode()

    assert LONG_PROBLEM in page
    assert f'href="{reverse("reference_fix", args=[broken.code])}">Fix it<' in page
    assert "Fixed copy of" in page and "long (3.0–10.0 s).mp4" in page


def test_it_answers_404_for_another_users_reference_or_fix(stranger_client, owner):
    reference = make_reference(owner, duration=14.0, problems=LONG_PROBLEM)
    fix = ReferenceFix.objects.create(user=owner, source=reference, start=0, end=10)

    fix_url = reverse("reference_fix", args=[reference.code])
    assert stranger_client.get(fix_url).status_code == 404
    assert stranger_client.post(fix_url, {"start": "0", "end": "10"}).status_code == 404
    assert stranger_client.get(reverse("fix_progress", args=[fix.code])).status_code == 404
    assert ReferenceFix.objects.count() == 1


def test_it_holds_one_user_to_two_conversions_at_a_time(owner):
    """One previews worker serves everybody; a burst of fixes must not take it all."""
    problem = "The file is Matroska/WebM (.mkv/.webm); the model takes MP4 or MOV only."
    sources = [
        make_reference(owner, problems=problem, format_name="matroska,webm")
        for _ in range(fixes.MAX_UNFINISHED_FIXES + 1)
    ]
    for source in sources[:-1]:
        fixes.start_fix(source, None, None)  # queued (the task runs after the commit)
    with pytest.raises(fixes.FixRefused, match="conversions under way"):
        fixes.start_fix(sources[-1], None, None)


@pytest.mark.parametrize(
    ("changes", "fixable"),
    [
        ({"duration": 14.0}, True),
        ({"duration": 120.0}, True),
        ({"duration": 7200.0}, False),  # hours of video are not kept to be transcoded
        ({"format_name": "matroska,webm"}, True),
        ({"format_name": "avi"}, True),
        ({"format_name": "mpegts"}, True),  # a camcorder's .mts
        ({"format_name": "flv"}, False),  # only the containers phones and recorders write
    ],
)
def test_it_offers_fixes_only_for_what_a_phone_would_make(changes, fixable):
    (problem,) = video.reference_problems(make_facts(**changes))
    assert problem.fixable is fixable


def test_it_says_how_long_a_clip_it_can_trim():
    (trimmable,) = video.reference_problems(make_facts(duration=120.0))
    (too_long,) = video.reference_problems(make_facts(duration=121.5))
    assert "trimmed here" not in trimmable.message
    assert too_long.message == (
        "The video is 121.50 s long; it must be 3–10.05 s. Clips up to 2 minutes can be "
        "trimmed here; cut a shorter piece of this one first."
    )


def test_it_gives_up_a_fix_that_outlived_its_worker(owner):
    problem = "The file is Matroska/WebM (.mkv/.webm); the model takes MP4 or MOV only."
    source = make_reference(owner, problems=problem, format_name="matroska,webm")
    stuck = fixes.start_fix(source, None, None)
    ReferenceFix.objects.filter(pk=stuck.pk).update(
        status=FixStatus.RUNNING, created_at=stuck.created_at - timedelta(minutes=16)
    )
    again = fixes.start_fix(source, None, None)
    stuck.refresh_from_db()
    assert stuck.status == FixStatus.FAILED and "stopped before it finished" in stuck.error_message
    assert again.pk != stuck.pk and again.status == FixStatus.QUEUED


@pytest.mark.django_db(transaction=True)
def test_parallel_asks_cannot_pass_the_two_conversions_limit_together(owner, long_clip):
    source = problem_reference(owner, long_clip, problems=LONG_PROBLEM)
    start = threading.Barrier(6)
    outcomes: list[str] = []

    def ask(n: int) -> None:
        start.wait(timeout=10)
        try:
            fixes.start_fix(source, 0.5 * n, 0.5 * n + 5)  # a segment of its own each
            outcomes.append("queued")
        except fixes.FixRefused:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["queued"] * 2 + ["refused"] * 4
    assert ReferenceFix.objects.count() == fixes.MAX_UNFINISHED_FIXES


def test_a_fix_that_waited_long_in_the_queue_is_not_stale_once_it_starts(owner):
    problem = "The file is Matroska/WebM (.mkv/.webm); the model takes MP4 or MOV only."
    source = make_reference(owner, problems=problem, format_name="matroska,webm")
    fix = fixes.start_fix(source, None, None)
    ReferenceFix.objects.filter(pk=fix.pk).update(
        created_at=fix.created_at - timedelta(minutes=20)  # a busy queue
    )
    fix.refresh_from_db()
    assert fix.claim()  # a worker takes it now
    assert ReferenceFix.give_up_stale(owner) == 0
    assert not ReferenceFix.objects.get(pk=fix.pk).claim(), "taken twice"
    assert ReferenceFix.objects.get(pk=fix.pk).status == FixStatus.RUNNING

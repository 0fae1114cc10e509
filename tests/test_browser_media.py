"""Media in a real browser (Debian's chromium through Playwright) against the real stack.

What only a browser can tell: a phone's HEVC clip is played through its H.264 preview
(and the original, which chromium can't decode, still goes to the provider untouched);
the side-by-side and wipe views keep both videos on one clock; the upload progress bar
moves during a slow upload; a dropped file lands in the form; the reference seeks over
HTTP Range.

One stack (gunicorn + qcluster, tests/stack.py) and one browser serve the whole module;
tests 2 and 5 share one completed run.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from django.test import override_settings
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from playground.simulator import store
from tests.stack import Stack, wait_for
from tests.test_browser import PASSWORD, RUN_URL, VIEWPORT
from tests.videos import make_video

pytestmark = pytest.mark.browser

PHONE_CLIP = "phone-hevc.mp4"
HEVC_TYPE = 'video/mp4; codecs="hvc1.1.6.L93.B0"'

# Resolves once the <video> has its metadata, fails, or after `ms` milliseconds, with
# what the element then knows.
VIDEO_STATE = """
(v, ms) => new Promise((resolve) => {
  const state = (why) => ({
    why, readyState: v.readyState, videoWidth: v.videoWidth, videoHeight: v.videoHeight,
    duration: v.duration, error: v.error && v.error.code, src: v.currentSrc,
  });
  if (v.error) return resolve(state("error"));
  if (v.readyState >= 1) return resolve(state("metadata"));
  v.addEventListener("loadedmetadata", () => resolve(state("metadata")), {once: true});
  v.addEventListener("error", () => resolve(state("error")), {once: true});
  setTimeout(() => resolve(state("timeout")), ms);
  if (v.preload === "none") v.load();
})
"""

# Seeks one <video> and resolves on `seeked` (or after 10 s) with where it ended up.
SEEK_ONE = """
(v, t) => new Promise((resolve) => {
  const done = (seeked) => resolve({
    seeked, t: v.currentTime, videoWidth: v.videoWidth, error: v.error && v.error.code,
    seekable: v.seekable.length ? v.seekable.end(v.seekable.length - 1) : 0,
    duration: v.duration,
  });
  const timer = setTimeout(() => done(false), 10000);
  v.addEventListener("seeked", () => { clearTimeout(timer); done(true); }, {once: true});
  v.currentTime = t;
})
"""

# Moves the compare box's shared seek control like a user dragging it, and resolves when
# both videos have reported `seeked` (or after 5 s) with each one's position.
SHARED_SEEK = """
(t) => new Promise((resolve) => {
  const ref = document.querySelector("#compare video[data-role=reference]");
  const res = document.querySelector("#compare video[data-role=result]");
  const seek = document.querySelector("input[data-role=seek]");
  const seeked = {reference: false, result: false};
  const report = (timedOut) => resolve({
    timedOut, seeked: {...seeked},
    reference: ref.currentTime, result: res.currentTime,
  });
  const timer = setTimeout(() => report(true), 5000);
  const note = (name) => () => {
    seeked[name] = true;
    if (seeked.reference && seeked.result) { clearTimeout(timer); report(false); }
  };
  ref.addEventListener("seeked", note("reference"), {once: true});
  res.addEventListener("seeked", note("result"), {once: true});
  seek.value = String(t);
  seek.dispatchEvent(new Event("input", {bubbles: true}));
})
"""

COMPARE_TIMES = """
() => {
  const ref = document.querySelector("#compare video[data-role=reference]");
  const res = document.querySelector("#compare video[data-role=result]");
  return {reference: ref.currentTime, result: res.currentTime,
          refPaused: ref.paused, resPaused: res.paused};
}
"""

# The data-role of the topmost <video> at a point of the viewport.
TOP_VIDEO = """
([x, y]) => {
  const video = document.elementsFromPoint(x, y).find((el) => el.tagName === "VIDEO");
  return video ? video.dataset.role : null;
}
"""

# Becomes truthy while the progress bar is shown part-way, past `after` percent:
# [value, the label's text].
UPLOAD_PART_WAY = """
(after) => {
  const bar = document.getElementById("upload-progress");
  const label = document.getElementById("upload-percent");
  if (!bar || !label || bar.hidden || label.hidden) return false;
  if (!bar.getClientRects().length) return false;  // hidden by CSS after all
  const value = Number(bar.value);
  return value > after && value < 100 ? [value, label.textContent] : false;
}
"""

# Drops a File (made in the page from base64 bytes) on the drop zone, as a drag from the
# desktop would, and reports what the zone and the file input did.
DROP_FILE = """
({name, b64}) => {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const file = new File([bytes], name, {type: "video/mp4"});
  const data = new DataTransfer();
  data.items.add(file);
  const zone = document.querySelector("[data-dropzone]");
  const fire = (type) => {
    const event = new DragEvent(type, {bubbles: true, cancelable: true, dataTransfer: data});
    zone.dispatchEvent(event);
    return event.defaultPrevented;
  };
  const result = {enterPrevented: fire("dragenter"), overPrevented: fire("dragover")};
  result.draggingClass = zone.classList.contains("dragging");
  result.dropPrevented = fire("drop");
  result.draggingAfterDrop = zone.classList.contains("dragging");
  const input = zone.querySelector("input[type=file]");
  result.count = input.files.length;
  result.name = input.files.length ? input.files[0].name : null;
  result.size = input.files.length ? input.files[0].size : null;
  result.valid = input.checkValidity();
  return result;
}
"""


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def context(browser: Browser, stack: Stack) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=stack.url, viewport=VIEWPORT)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


@pytest.fixture(scope="module")
def phone_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a phone records: HEVC, 1280×720, with sound."""
    folder = tmp_path_factory.mktemp("media-videos")
    return make_video(
        folder / PHONE_CLIP, codec="libx265", width=1280, height=720, seconds=3.2, audio=True
    )


@pytest.fixture(scope="module")
def phone_run(stack: Stack, phone_clip: Path) -> dict[str, Any]:
    """A run on the HEVC clip, finished, with its reference's preview made."""
    client = stack.user_client("phone", PASSWORD)
    code = stack.generate(client, phone_clip, prompt="@Video1 as a watercolour painting")
    reference = reference_of(stack, code)
    assert reference["codec"] == "hevc", dict(reference)
    try:
        wait_for(lambda: reference_of(stack, code)["preview"], timeout=60, every=0.2)
        wait_for(lambda: stack.run(code)["status"] in {"completed", "failed"}, timeout=60)
    except TimeoutError:
        pytest.fail(
            f"no preview or no finished run: {dict(reference_of(stack, code))}\n{logs(stack)}"
        )
    assert stack.run(code)["status"] == "completed", stack.run(code)["error_message"]
    return {"client": client, "code": code, "reference": reference_of(stack, code)}


@pytest.fixture(scope="module")
def compare_run(stack: Stack, good_video: Path) -> dict[str, Any]:
    """A completed run (4 s result) on an H.264 reference, for the compare views."""
    client = stack.user_client("compare", PASSWORD)
    code = stack.generate(client, good_video, duration="4", prompt="@Video1 under neon rain")
    wait_for(lambda: stack.run(code)["status"] in {"completed", "failed"}, timeout=60)
    assert stack.run(code)["status"] == "completed", stack.run(code)["error_message"]
    return {"client": client, "code": code, "reference": reference_of(stack, code)}


# --- helpers --------------------------------------------------------------------------------


def reference_of(stack: Stack, code: str) -> Any:
    return stack.query(
        "SELECT ref.* FROM runs_reference ref JOIN runs_run run ON run.reference_id = ref.id"
        " WHERE run.code = ?",
        code.replace("-", ""),
    )[0]


def logs(stack: Stack) -> str:
    return "\n".join(
        f"--- {log.name}\n" + log.read_text(errors="replace")[-3000:]
        for log in sorted(stack.logs.glob("*.log"))
    )


def sign_in(context: BrowserContext, stack: Stack, client: httpx.Client) -> None:
    """Hand the HTTP client's session (and CSRF cookie) to the browser."""
    context.add_cookies(
        [{"name": c.name, "value": c.value, "url": stack.url} for c in client.cookies.jar]
    )


def new_user(context: BrowserContext, stack: Stack, username: str) -> httpx.Client:
    client = stack.user_client(username, PASSWORD)
    sign_in(context, stack, client)
    return client


def video_state(page: Page, selector: str, ms: int = 10_000) -> dict[str, Any]:
    return page.eval_on_selector(selector, VIDEO_STATE, ms)


def box(page: Page, selector: str) -> dict[str, float]:
    found = page.locator(selector).bounding_box()
    assert found is not None, f"{selector} has no box (not rendered)"
    return found


def overlap(a: dict[str, float], b: dict[str, float]) -> float:
    """The intersection's area over the smaller box's area."""
    width = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
    height = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
    smaller = min(a["width"] * a["height"], b["width"] * b["height"])
    return max(0.0, width) * max(0.0, height) / smaller if smaller else 0.0


def codec_of(path: Path) -> tuple[str, int, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return stream.codec_context.name, stream.width, stream.height


# --- 1. a phone's HEVC clip ----------------------------------------------------------------


def test_it_plays_a_phone_clip_through_an_h264_preview(
    context: BrowserContext, page: Page, stack: Stack, phone_clip: Path, phone_run: dict
) -> None:
    reference = phone_run["reference"]
    media = stack.var / "media"
    original, preview = media / reference["file"], media / reference["preview"]

    # The original is kept byte for byte, and it is what the provider downloaded.
    uploaded = phone_clip.read_bytes()
    assert original.read_bytes() == uploaded, "the stored original differs from the upload"
    job_id = stack.run(phone_run["code"])["provider_job_id"]
    with override_settings(SIMULATOR_ROOT=stack.var / "simulator"):
        fetched = store.SimJob.load(job_id)
    assert fetched is not None
    assert fetched.input_sha256 == hashlib.sha256(uploaded).hexdigest(), (
        "the provider got something else than the upload"
    )
    # The preview is a separate H.264 file of the same picture size.
    assert codec_of(preview) == ("h264", 1280, 720)
    assert codec_of(original)[0] == "hevc"

    # The run page's reference plays: the browser gets the preview and decodes it.
    sign_in(context, stack, phone_run["client"])
    page.goto(f"/runs/{phone_run['code']}/")
    state = video_state(page, "video.reference")
    assert state["why"] == "metadata" and not state["error"], state
    assert state["videoWidth"] == 1280 and state["videoHeight"] == 720, state
    assert abs(state["duration"] - 3.2) <= 0.25, state
    served = page.request.get(state["src"])
    assert served.ok, served.status
    assert served.body() == preview.read_bytes(), "the page is not served the preview"

    # The References page says what is playing.
    page.goto("/references/")
    card = page.locator("article.ref").filter(has=page.locator(f"h3[title='{PHONE_CLIP}']"))
    expect(card).to_have_count(1)
    expect(card.locator("p.muted").first).to_contain_text("HEVC (playing an H.264 preview)")
    state = video_state(page, f"article.ref:has(h3[title='{PHONE_CLIP}']) video")
    assert state["why"] == "metadata" and state["videoWidth"] == 1280, state


def test_it_needs_the_preview_as_the_browser_cannot_decode_the_hevc_original(
    context: BrowserContext, page: Page, stack: Stack, phone_run: dict
) -> None:
    """The contrast: the same bytes the provider gets, played straight, show no picture."""
    media = stack.var / "media"
    files = {
        "original": (media / phone_run["reference"]["file"]).read_bytes(),
        "preview": (media / phone_run["reference"]["preview"]).read_bytes(),
    }

    def serve(route: Route) -> None:
        name = route.request.url.rsplit("/", 1)[-1].removesuffix(".mp4")
        route.fulfill(status=200, body=files[name], content_type="video/mp4")

    page.route("**/__contrast/*.mp4", serve)  # never reaches the server
    page.goto("/accounts/login/")
    page.evaluate(
        """() => ["original", "preview"].forEach((name) => {
             const v = document.createElement("video");
             v.id = name; v.muted = true; v.preload = "auto";
             v.src = "/__contrast/" + name + ".mp4";
             document.body.append(v);
           })"""
    )
    # The control: the same route and element play the preview, so the route is sound.
    control = video_state(page, "#preview")
    assert control["why"] == "metadata" and control["videoWidth"] == 1280, control
    state = video_state(page, "#original")
    can_play = page.evaluate(f"() => document.createElement('video').canPlayType('{HEVC_TYPE}')")
    if state["videoWidth"] > 0:
        pytest.skip(
            f"this chromium decodes HEVC itself (videoWidth {state['videoWidth']}, "
            f"canPlayType {can_play!r}): the contrast can't be shown here; the preview "
            "is still what the pages play (test_it_plays_a_phone_clip_through_an_h264_preview)"
        )
    assert state["why"] in {"error", "metadata"}, state  # it did answer, with no picture


# --- 2. side by side and wipe --------------------------------------------------------------


def test_it_keeps_side_by_side_and_wipe_on_one_clock(
    context: BrowserContext, page: Page, stack: Stack, compare_run: dict
) -> None:
    sign_in(context, stack, compare_run["client"])
    page.goto(f"/runs/{compare_run['code']}/")
    expect(page.locator("#status-card[data-status=completed]")).to_be_visible()
    panel = page.locator("[data-panel=compare]")
    ref_sel, res_sel = "#compare video[data-role=reference]", "#compare video[data-role=result]"
    expect(panel).to_be_hidden()

    page.click("[data-view=side]")
    expect(panel).to_be_visible()
    expect(page.locator("#result-video")).to_be_hidden()
    expect(page.locator("[data-view=side]")).to_have_attribute("aria-selected", "true")
    for selector in (ref_sel, res_sel):
        state = video_state(page, selector)
        assert state["why"] == "metadata" and state["videoWidth"] > 0, (selector, state)
    # Side by side: next to each other, neither clipped.
    ref_box, res_box = box(page, ref_sel), box(page, res_sel)
    assert ref_box["x"] + ref_box["width"] <= res_box["x"] + 1, (ref_box, res_box)
    assert page.eval_on_selector(res_sel, "v => getComputedStyle(v).clipPath") == "none"

    # The shared seek moves both.
    seek = page.evaluate(SHARED_SEEK, 2.0)
    assert not seek["timedOut"], f"not both videos seeked: {seek}"
    assert abs(seek["reference"] - seek["result"]) <= 0.1, seek
    assert abs(seek["reference"] - 2.0) <= 0.1, seek
    assert abs(seek["result"] - 2.0) <= 0.1, seek

    # Play both, together; then pause both with the same button.
    toggle = page.locator("[data-role=toggle]")
    expect(toggle).to_have_text("Play both")
    page.evaluate("() => document.querySelectorAll('#compare video').forEach(v => v.muted = true)")
    toggle.click()
    expect(toggle).to_have_text("Pause both")
    page.wait_for_timeout(1_000)
    playing = page.evaluate(COMPARE_TIMES)
    assert not playing["refPaused"] and not playing["resPaused"], playing
    assert playing["reference"] > 2.4 and playing["result"] > 2.4, f"not both advanced: {playing}"
    assert abs(playing["reference"] - playing["result"]) <= 0.15, playing
    toggle.click()
    expect(toggle).to_have_text("Play both")
    paused = page.evaluate(COMPARE_TIMES)
    assert paused["refPaused"] and paused["resPaused"], paused

    # Wipe: the result is cut at the handle, over the reference.
    page.click("[data-view=wipe]")
    expect(panel).to_be_visible()
    page.eval_on_selector(
        "input[data-role=wipe]",
        "el => { el.value = '30'; el.dispatchEvent(new Event('input', {bubbles: true})); }",
    )
    clip = page.eval_on_selector(res_sel, "v => getComputedStyle(v).clipPath")
    assert "30%" in clip, clip
    expect(page.locator(ref_sel)).to_be_visible()
    expect(page.locator(res_sel)).to_be_visible()
    ref_box, res_box = box(page, ref_sel), box(page, res_sel)
    assert overlap(ref_box, res_box) > 0.9, (ref_box, res_box)
    # Left of the cut the topmost video is the reference (the result is clipped away
    # there); right of it, the result.
    y = res_box["y"] + res_box["height"] / 2
    left = page.evaluate(TOP_VIDEO, [res_box["x"] + res_box["width"] * 0.15, y])
    right = page.evaluate(TOP_VIDEO, [res_box["x"] + res_box["width"] * 0.65, y])
    assert (left, right) == ("reference", "result"), (left, right)

    # Back to the result alone.
    page.click("[data-view=player]")
    expect(page.locator("#result-video")).to_be_visible()
    expect(panel).to_be_hidden()


# --- 3. upload progress --------------------------------------------------------------------


def test_it_shows_upload_progress_during_a_slow_upload(
    context: BrowserContext, page: Page, stack: Stack, good_video: Path
) -> None:
    assert 1_000_000 <= good_video.stat().st_size <= 2_500_000, good_video.stat().st_size
    new_user(context, stack, "uploader")
    page.goto("/")
    page.fill("#id_prompt", "@Video1 in falling snow")
    page.set_input_files("#id_reference_video", str(good_video))
    expect(page.locator("#upload-progress")).to_be_hidden()

    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    conditions = {"offline": False, "latency": 0, "downloadThroughput": -1}
    cdp.send("Network.emulateNetworkConditions", {**conditions, "uploadThroughput": 200_000})
    try:
        page.click("button.primary")
        part_way = page.wait_for_function(UPLOAD_PART_WAY, arg=0, polling=50, timeout=20_000)
        value, label = part_way.json_value()
        # And it moves on while the upload goes (about 12% a second at this speed).
        later = page.wait_for_function(UPLOAD_PART_WAY, arg=value, polling=50, timeout=10_000)
        _, later_label = later.json_value()
    finally:
        cdp.send("Network.emulateNetworkConditions", {**conditions, "uploadThroughput": -1})
    # Both waits above only end on a value between `arg` and 100: value < later_value < 100.
    assert re.fullmatch(r"Uploading… (\d+)%", label), label
    assert abs(int(re.search(r"\d+", label).group()) - value) <= 1, (value, label)
    assert re.fullmatch(r"Uploading… (\d+)%", later_label), later_label

    page.wait_for_url(RUN_URL, timeout=30_000)
    code = RUN_URL.search(page.url).group(1)
    assert reference_of(stack, code)["size"] == good_video.stat().st_size


# --- 4. drag and drop ----------------------------------------------------------------------


def test_it_uploads_a_dropped_file(
    context: BrowserContext, page: Page, stack: Stack, tmp_path: Path
) -> None:
    clip = make_video(tmp_path / "dropped-clip.mp4", seconds=3.0)
    new_user(context, stack, "dropper")
    page.goto("/")
    page.fill("#id_prompt", "@Video1 as a claymation")
    b64 = base64.b64encode(clip.read_bytes()).decode()
    dropped = page.evaluate(DROP_FILE, {"name": clip.name, "b64": b64})
    assert dropped["enterPrevented"] and dropped["overPrevented"], dropped
    assert dropped["dropPrevented"], f"the browser would open the dropped file: {dropped}"
    assert dropped["draggingClass"] and not dropped["draggingAfterDrop"], dropped
    assert dropped["count"] == 1 and dropped["name"] == clip.name, dropped
    assert dropped["size"] == clip.stat().st_size and dropped["valid"], dropped

    page.click("button.primary")
    page.wait_for_url(RUN_URL, timeout=30_000)
    reference = reference_of(stack, RUN_URL.search(page.url).group(1))
    assert reference["name"] == clip.name
    assert (stack.var / "media" / reference["file"]).read_bytes() == clip.read_bytes()


# --- 5. seeking the reference over HTTP Range ---------------------------------------------


def test_it_seeks_the_reference_over_http_range(
    context: BrowserContext, page: Page, stack: Stack, compare_run: dict
) -> None:
    sign_in(context, stack, compare_run["client"])
    reference_url = (
        f"{stack.url}/references/{uuid.UUID(compare_run['reference']['code'])}/video.mp4"
    )
    answers: list[tuple[int, str | None, str | None]] = []
    page.on(
        "response",
        lambda r: (
            answers.append(
                (r.status, r.request.headers.get("range"), r.headers.get("content-range"))
            )
            if r.url == reference_url
            else None
        ),
    )
    page.goto(f"/runs/{compare_run['code']}/")
    state = video_state(page, "video.reference")
    assert state["why"] == "metadata" and state["videoWidth"] > 0, state

    seek = page.eval_on_selector("video.reference", SEEK_ONE, 1.5)
    assert seek["seeked"], seek
    assert abs(seek["t"] - 1.5) <= 0.1, seek
    assert seek["videoWidth"] == 960 and not seek["error"], seek
    # Seekable to the end: chromium only says so when the server honours Range.
    assert seek["seekable"] >= seek["duration"] - 0.1, seek
    assert answers, f"no request for the reference video ({reference_url})"
    assert all(status == 206 and ranged for status, _, ranged in answers), answers
    assert all(asked for _, asked, _ in answers), answers

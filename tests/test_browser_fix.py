""" "Fix it" in a real browser (Debian's chromium through Playwright) against the real stack.

A 14 s clip is too long for the model: the Generate form keeps it and offers Fix it, the
fix opens in a dialog over the form, the range sliders pick a 3.0–10.0 s segment, the
previews qcluster converts it while a progress bar shows how far it is, and "Use this clip" puts the
copy in the form, where the prompt is still as typed; Generate then makes a run of it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.stack import ROOT, Stack
from tests.test_browser import RUN_URL, VIEWPORT, sign_up
from tests.test_fixes import quick_video

pytestmark = pytest.mark.browser

SCREENSHOT = ROOT / "test-artifacts" / "screenshot-fix.png"
PROMPT = "@Video1 as a charcoal sketch, slow pan"

# Moves one range input as a user would (its value, then an input event), and resolves
# once the dialog's video has seeked there (or after 5 s) with where it is.
DRAG = """
([selector, value]) => new Promise((resolve) => {
  const input = document.querySelector(selector);
  const video = document.querySelector("#fix-dialog video[data-fix-video]");
  const timer = setTimeout(() => resolve(video.currentTime), 5000);
  video.addEventListener("seeked", () => { clearTimeout(timer); resolve(video.currentTime); },
                         {once: true});
  input.value = String(value);
  input.dispatchEvent(new Event("input", {bubbles: true}));
})
"""


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return quick_video(tmp_path_factory.mktemp("fix") / "long.mp4", seconds=14)


@pytest.fixture
def page(browser: Browser, stack: Stack) -> Iterator[Page]:
    context: BrowserContext = browser.new_context(base_url=stack.url, viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    context.close()


def readout(page: Page) -> tuple[str, str, str]:
    trim = page.locator("#fix-dialog [data-trim]")
    return (
        trim.locator("[data-trim-start]").inner_text(),
        trim.locator("[data-trim-end]").inner_text(),
        trim.locator("[data-trim-length]").inner_text(),
    )


def test_it_trims_a_14_s_clip_in_a_dialog_and_generates_from_the_copy(
    page: Page, stack: Stack, long_clip: Path
) -> None:
    sign_up(page, stack, "fixer")
    page.fill("#id_prompt", PROMPT)
    page.select_option("#id_duration", "4")
    page.set_input_files("#id_reference_video", str(long_clip))
    page.click("#generate-form button.primary")

    # Kept with its problem, and "Fix it" beside the message.
    error = page.locator("#generate-form [data-dropzone] .errors")
    expect(error).to_contain_text("14.00 s long")
    page.click("#generate-form [data-fix-open]")
    dialog = page.locator("#fix-dialog")
    expect(dialog).to_have_attribute("open", "")
    expect(dialog.locator("h1")).to_have_text("Fix “long.mp4”")
    page.wait_for_function(
        "() => document.querySelector('#fix-dialog video[data-fix-video]').readyState >= 1"
    )
    assert readout(page) == ("0.0 s", "10.0 s", "10.0 s")

    # The in point moves; the video shows where it is.
    assert abs(page.evaluate(DRAG, ["#fix-start", 3]) - 3) < 0.1
    assert readout(page) == ("3.0 s", "10.0 s", "7.0 s")
    # The out point to the end: at most 10 s, so the in point follows.
    assert abs(page.evaluate(DRAG, ["#fix-end", 14]) - 14) < 0.1
    assert readout(page) == ("4.0 s", "14.0 s", "10.0 s")
    # Back to 3.0–10.0, with the keyboard on the focused handles.
    page.evaluate(DRAG, ["#fix-end", 10])
    page.focus("#fix-start")
    for _ in range(10):  # a step (0.1 s) each: 4.0 → 3.0
        page.keyboard.press("ArrowLeft")
    assert readout(page) == ("3.0 s", "10.0 s", "7.0 s")
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))

    # The conversion runs on the previews qcluster; the bar follows it, then "Use this clip".
    page.evaluate(
        """() => {
          window.__bars = [];
          new MutationObserver(() => document.querySelectorAll(".fix-progress progress")
              .forEach((bar) => window.__bars.push(Number(bar.value))))
            .observe(document.body, { subtree: true, childList: true, attributes: true });
        }"""
    )
    dialog.get_by_role("button", name=re.compile("Fix it")).click()
    use = dialog.get_by_role("link", name="Use this clip")
    expect(use).to_be_visible(timeout=30_000)
    bars = page.evaluate("window.__bars")
    assert bars and all(0 <= value < 100 for value in bars), bars  # shown while it ran
    assert bars == sorted(bars), bars
    code = use.get_attribute("data-use-reference") or ""
    href = use.get_attribute("href") or ""
    [copy] = stack.query(
        "SELECT name, duration, problems FROM runs_reference WHERE code = ?", code.replace("-", "")
    )
    assert copy["name"] == "long (3.0–10.0 s).mp4" and copy["problems"] == ""
    assert abs(copy["duration"] - 7.0) < 0.1
    use.click()

    # The form: the copy picked, nothing typed lost, the old error gone.
    expect(dialog).not_to_have_attribute("open", "")
    expect(page.locator("#id_reference")).to_have_value(code)
    expect(page.locator("#id_prompt")).to_have_value(PROMPT)
    expect(page.locator("#id_duration")).to_have_value("4")
    expect(error).to_have_count(0)
    expect(page.locator("#upload-progress")).to_be_hidden()  # the fix's requests were no upload

    # The plain link (what "Use this clip" is without the dialog) loses nothing either: the
    # form comes back empty from the server, and static/js/fix.js restores the draft.
    page.goto(href)
    expect(page.locator("#id_reference")).to_have_value(code)
    expect(page.locator("#id_prompt")).to_have_value(PROMPT)
    expect(page.locator("#id_duration")).to_have_value("4")

    page.click("#generate-form button.primary")
    page.wait_for_url(RUN_URL)
    expect(page.locator("#status-card")).to_be_visible()
    run = stack.run(RUN_URL.search(page.url).group(1))
    [used] = stack.query("SELECT code FROM runs_reference WHERE id = ?", run["reference_id"])
    assert used["code"] == code.replace("-", "")
    assert run["prompt"] == PROMPT and run["duration"] == 4
    assert page.evaluate("sessionStorage.getItem('playground.generate-draft')") is None

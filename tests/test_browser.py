"""A real browser (Debian's chromium, driven by Playwright) against the real stack.

gunicorn and a django-q2 qcluster run in subprocesses (tests/stack.py); the simulator
renders a real H.264 result. The browser signs up, generates a shot through the form,
watches the status card update in place, plays and seeks the result, shares it, and
checks what the form shows for a reference that is not a video.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.stack import ROOT, Stack, wait_for

pytestmark = pytest.mark.browser

VIEWPORT = {"width": 1280, "height": 860}
# Written on every run for a look; docs/screenshot-run.png (the README's) is copied from it.
SCREENSHOT = ROOT / "test-artifacts" / "screenshot-run.png"
PASSWORD = "a-long-pass-123"
ACTIVE = {"pending", "submitting", "queued", "processing", "fetching"}
RUN_URL = re.compile(r"/runs/([0-9a-f-]{36})/$")
PROMPT = "@Video1 at golden hour, warm light, slow push-in"
PROMPT_ERROR = ".hint:has([data-count-for=id_prompt]) + .errors"  # right under the prompt

# Records every data-status the run page's #status-card takes, from the first parse on,
# so states that only last between two polls are still seen.
WATCH_STATUS = """
(() => {
  window.__statuses = [];
  const note = () => {
    const card = document.getElementById("status-card");
    const status = card && card.dataset.status;
    if (status && window.__statuses[window.__statuses.length - 1] !== status) {
      window.__statuses.push(status);
    }
  };
  new MutationObserver(note).observe(document, {
    subtree: true, childList: true, attributes: true, attributeFilter: ["data-status"],
  });
})();
"""


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def context(browser: Browser, stack: Stack) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=stack.url, viewport=VIEWPORT)
    context.add_init_script(WATCH_STATUS)
    yield context
    context.close()


@pytest.fixture
def page(context: BrowserContext) -> Page:
    page = context.new_page()
    page.set_default_timeout(15_000)
    return page


# --- helpers --------------------------------------------------------------------------------


def sign_up(page: Page, stack: Stack, username: str) -> None:
    page.goto("/accounts/signup/")
    page.fill("#id_username", username)
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.click("button.primary")
    page.wait_for_url(stack.url + "/")
    expect(page.locator("#generate-form")).to_be_visible()


def log_in(page: Page, stack: Stack, username: str) -> None:
    page.goto("/accounts/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button.primary")
    page.wait_for_url(stack.url + "/")
    expect(page.locator("#generate-form")).to_be_visible()


def wait_for_metadata(page: Page) -> None:
    """#result-video has loaded its metadata (readyState >= HAVE_METADATA)."""
    page.wait_for_function(
        "() => { const v = document.querySelector('#result-video');"
        " return v !== null && v.readyState >= 1; }",
        timeout=15_000,
    )
    error = page.eval_on_selector("#result-video", "v => v.error && v.error.code")
    assert not error, f"the video element reports MediaError {error}"


def video_width(page: Page) -> int:
    return page.eval_on_selector("#result-video", "v => v.videoWidth")


def wait_for_completed_card(page: Page, stack: Stack, code: str) -> None:
    """Wait for the card to show the completed run; on timeout, say what was going on."""
    try:
        page.wait_for_selector("#status-card[data-status=completed]", timeout=60_000)
    except PlaywrightTimeoutError:
        run = stack.run(code)
        logs = "\n".join(
            f"--- {log.name}\n" + log.read_text(errors="replace")[-3000:]
            for log in sorted(stack.logs.glob("*.log"))
        )
        pytest.fail(
            f"the card never showed a completed run: statuses seen "
            f"{page.evaluate('window.__statuses')}, in the database {run['status']!r} "
            f"({run['error_message']!r})\n{logs}"
        )


# --- tests ----------------------------------------------------------------------------------


def test_it_generates_watches_plays_and_seeks_a_run(
    page: Page, stack: Stack, good_video: Path
) -> None:
    sign_up(page, stack, "alice")

    # The form, with the estimate following the duration.
    page.fill("#id_prompt", PROMPT)
    page.set_input_files("#id_reference_video", str(good_video))
    expect(page.locator("#estimate")).to_have_text("$0.840")  # the default 5 s
    page.select_option("#id_duration", "4")
    expect(page.locator("#estimate")).to_have_text("$0.672")
    page.click("button.primary")

    # The run page, left alone: the card must change in place, never by a reload.
    page.wait_for_url(RUN_URL)
    code = RUN_URL.search(page.url).group(1)
    page.evaluate("window.__noReload = 1")
    expect(page.locator("#status-card")).to_have_attribute("data-status", re.compile(".+"))
    # While a run is live, the page offers a notification for when it is done (the
    # browser has not been asked yet); once nothing is live, the offer goes.
    expect(page.locator("#notify-permission")).to_be_visible()
    wait_for_completed_card(page, stack, code)
    expect(page.locator("#notify-permission")).to_be_hidden()
    statuses = page.evaluate("window.__statuses")
    assert page.evaluate("window.__noReload") == 1, "the run page reloaded"
    assert statuses[0] in ACTIVE, statuses
    assert statuses[-1] == "completed", statuses
    assert set(statuses[:-1]) <= ACTIVE, statuses
    run = stack.run(code)
    assert run["status"] == "completed"
    assert run["billed_cost_micros"] == 4 * 168_000
    # The side panel was refreshed out of band with the final cost and the share button
    # (a simulated run's cost: what the real model would have billed).
    expect(page.locator("#run-side dt:text-is('Simulated cost') + dd")).to_have_text(
        "would bill $0.672 (computed)"
    )
    expect(page.get_by_role("button", name="Create share link")).to_be_visible()

    # The result really plays: decodable, the right length, advancing, seekable.
    wait_for_metadata(page)
    assert video_width(page) > 0, "the browser cannot decode the result's video"
    duration = page.eval_on_selector("#result-video", "v => v.duration")
    assert abs(duration - 4) <= 0.25, duration
    page.eval_on_selector(
        "#result-video",
        """v => { v.muted = true;  // autoplay policy: only muted media may play unprompted
                 return Promise.race([v.play(), new Promise((_, reject) =>
                   setTimeout(() => reject(new Error("play() never settled")), 10000))]); }""",
    )
    page.wait_for_timeout(1_000)
    playing = page.eval_on_selector(
        "#result-video",
        "v => ({t: v.currentTime, paused: v.paused, error: v.error && v.error.code})",
    )
    assert playing["error"] is None, playing
    assert not playing["paused"], playing
    assert playing["t"] > 0.3, playing
    position = page.eval_on_selector(
        "#result-video",
        """v => new Promise((resolve, reject) => {
             v.pause();
             const timer = setTimeout(() => reject(new Error("no seeked event")), 10000);
             v.addEventListener("seeked", () => { clearTimeout(timer); resolve(v.currentTime); },
                                {once: true});
             v.currentTime = 2.5;
           })""",
    )
    assert abs(position - 2.5) <= 0.1, position
    assert page.evaluate("window.__noReload") == 1

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.eval_on_selector("#result-video", "v => { v.muted = false; }")  # for the README
    page.mouse.move(0, 0)
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    assert SCREENSHOT.stat().st_size > 10_000


def test_it_lists_a_run_in_history_and_plays_its_share_link(
    page: Page, browser: Browser, stack: Stack, good_video: Path
) -> None:
    client = stack.user_client("bob", PASSWORD)
    code = stack.generate(client, good_video, duration="4", prompt="@Video1 under neon rain")
    wait_for(lambda: stack.run(code)["status"] in {"completed", "failed"}, timeout=60)
    assert stack.run(code)["status"] == "completed", stack.run(code)["error_message"]
    run_url = f"/runs/{code}/"
    log_in(page, stack, "bob")

    # History: the run's row, with a poster that loaded, its status and its cost.
    page.goto("/runs/")
    row = page.locator("table.history tbody tr").filter(has=page.locator(f"a[href$='{code}/']"))
    expect(row).to_have_count(1)
    poster = row.locator("img.thumb")
    expect(poster).to_be_visible()
    poster.evaluate(
        """img => img.complete || new Promise(done => {
             img.addEventListener("load", done);
             img.addEventListener("error", done);
             setTimeout(done, 10000);
           })"""
    )
    assert poster.evaluate("img => img.naturalWidth") > 0, "the poster did not load"
    expect(row.locator("td").nth(2)).to_have_text("Completed")
    expect(row.locator("td").nth(4)).to_have_text("would bill $0.672 (computed)")

    # Share it, then watch it logged out, in a fresh context.
    row.locator("td").nth(1).get_by_role("link").click()
    page.wait_for_url(re.compile(re.escape(run_url) + "$"))
    page.get_by_role("button", name="Create share link").click()
    share_input = page.locator("input.share-url")
    expect(share_input).to_be_visible()
    share_url = share_input.input_value()
    assert share_url.startswith(stack.url + "/s/"), share_url

    stranger = browser.new_context(viewport=VIEWPORT)
    try:
        shared = stranger.new_page()
        shared.goto(share_url)
        expect(shared.get_by_role("link", name="Log in")).to_be_visible()  # logged out
        expect(shared.locator("h1.prompt")).to_have_text("@Video1 under neon rain")
        wait_for_metadata(shared)
        assert video_width(shared) > 0, "the shared video cannot be decoded"
        # And the owner's private URL stays private to the stranger.
        response = shared.goto(stack.url + run_url)
        assert "/accounts/login/" in shared.url, (response and response.status, shared.url)
    finally:
        stranger.close()


def test_it_shows_form_errors_at_the_fields(page: Page, stack: Stack, tmp_path: Path) -> None:
    not_a_video = tmp_path / "clip.mp4"
    not_a_video.write_text("This is a text file, not a video.\n" * 20)
    sign_up(page, stack, "carol")
    form = page.locator("#generate-form")
    submits: list[str] = []
    page.on("request", lambda r: submits.append(r.url) if r.method == "POST" else None)

    # An empty prompt never leaves the browser: the textarea is `required`.
    page.set_input_files("#id_reference_video", str(not_a_video))
    page.click("button.primary")
    assert page.eval_on_selector("#id_prompt", "el => el.validity.valueMissing")
    page.wait_for_timeout(300)
    assert submits == []

    # A blank (whitespace) prompt gets past the browser; the server names both problems.
    page.evaluate("window.__noReload = 1")
    page.fill("#id_prompt", "   ")
    page.select_option("#id_duration", "4")
    page.click("button.primary")
    prompt_error = form.locator(PROMPT_ERROR)
    expect(prompt_error).to_contain_text("Write a prompt")
    reference_error = form.locator("[data-dropzone] .errors")
    expect(reference_error).to_contain_text("“clip.mp4” can’t be used")
    expect(reference_error).to_contain_text("not a video file")
    expect(page.locator("#id_duration")).to_have_value("4")
    assert page.evaluate("window.__noReload") == 1, "the form did a full page load"
    assert page.url == stack.url + "/"

    # With a good prompt, only the file is wrong, and what the user typed stays.
    page.fill("#id_prompt", PROMPT)
    page.set_input_files("#id_reference_video", str(not_a_video))
    page.click("button.primary")
    expect(form.locator("[data-dropzone] .errors")).to_contain_text("can’t be used")
    expect(form.locator(PROMPT_ERROR)).to_have_count(0)
    expect(page.locator("#id_prompt")).to_have_value(PROMPT)
    expect(page.locator("#id_duration")).to_have_value("4")
    expect(page.locator("#estimate")).to_have_text("$0.672")
    expect(page.locator("[data-count-for=id_prompt]")).to_have_text(str(len(PROMPT)))
    assert page.evaluate("window.__noReload") == 1, "the form did a full page load"
    assert not stack.query(
        "SELECT 1 FROM runs_run r JOIN auth_user u ON u.id = r.user_id WHERE u.username = ?",
        "carol",
    ), "a run was created from an invalid form"
    # The swapped-in form is still wired: the estimate follows the duration again.
    page.select_option("#id_duration", "6")
    expect(page.locator("#estimate")).to_have_text("$1.008")

    # Typing past the limit is cut at 2,500 characters by maxlength.
    page.fill("#id_prompt", "")
    page.focus("#id_prompt")
    page.keyboard.insert_text("x" * 2600)
    assert len(page.input_value("#id_prompt")) == 2500
    expect(page.locator("[data-count-for=id_prompt]")).to_have_text("2,500")


def test_it_runs_a_two_variant_batch_then_compares_and_remixes(
    page: Page, stack: Stack, good_video: Path
) -> None:
    sign_up(page, stack, "bea")
    page.fill("#id_prompt", "@Video1 as a watercolour")
    page.set_input_files("#id_reference_video", str(good_video))
    page.select_option("#id_duration", "3")
    page.click("details.fanout summary")
    page.fill("#id_variants", "@Video1 as an oil painting")
    expect(page.locator("#estimate")).to_have_text("2 runs · $1.008")
    # Each ticked duration and each repeat multiplies it, live: 2 prompts × (3 s, 5 s) × 2.
    page.check("input[name=more_durations][value='5']")
    page.select_option("#id_repeat", "2")
    expect(page.locator("#estimate")).to_have_text("8 runs · $5.376")
    expect(page.locator("#generate-form button.primary")).to_have_text("Generate 8 runs")
    page.uncheck("input[name=more_durations][value='5']")
    page.select_option("#id_repeat", "1")
    expect(page.locator("#estimate")).to_have_text("2 runs · $1.008")
    expect(page.locator("#generate-form button.primary")).to_have_text("Generate 2 runs")
    page.keyboard.press("Control+Enter")  # from the Variants box: submits the form

    # The batch page: two cards, each polling on its own, both turning into players.
    page.wait_for_url(re.compile(r"/batches/[0-9a-f-]{36}/$"))
    cards = page.locator(".batch-cell .status-card")
    expect(cards).to_have_count(2)
    page.wait_for_function(
        "document.querySelectorAll('.batch-cell [data-status=completed] video').length === 2",
        timeout=60_000,
    )
    expect(page.locator("#batch-totals")).to_contain_text("2 of 2 done")
    assert "running" not in page.title()
    page.screenshot(path=SCREENSHOT.with_name("batch.png"), full_page=True)

    # Compare them: one control drives both results and the reference.
    page.locator(".batch-cell input[name=run]").nth(0).check()
    page.locator(".batch-cell input[name=run]").nth(1).check()
    page.click("text=Compare ticked runs")
    page.wait_for_url(re.compile(r"/compare/\?run="))
    expect(page.locator(".diff ins")).to_have_text("an oil painting")
    page.wait_for_function(
        "[...document.querySelectorAll('video[data-sync]')].every(v => v.readyState >= 1)"
    )
    times = "[...document.querySelectorAll('video[data-sync]')].map(v => v.currentTime)"
    page.eval_on_selector(
        "[data-sync-seek]", "s => { s.value = '1.5'; s.dispatchEvent(new Event('input')); }"
    )
    page.wait_for_function(f"{times}.every(t => Math.abs(t - 1.5) < 0.1)")
    page.locator("h1").click()  # focus off the controls: the keys go to the players
    page.keyboard.press(" ")
    page.wait_for_function(f"{times}.every(t => t > 1.7)")
    page.keyboard.press(" ")
    page.wait_for_function(
        "[...document.querySelectorAll('video[data-sync]')].every(v => v.paused)"
    )
    spread = page.evaluate(
        f"(() => {{ const t = {times}; return Math.max(...t) - Math.min(...t); }})()"
    )
    assert spread < 0.1, spread
    page.screenshot(path=SCREENSHOT.with_name("compare.png"), full_page=True)
    # "." and "," step every player one frame (1/24 s), even with "Play all" just clicked
    # and still focused (its own Space stays its click: one toggle, not two).
    page.click("[data-sync-toggle]")
    page.keyboard.press(" ")  # the focused button's click: paused again
    page.wait_for_function(
        "[...document.querySelectorAll('video[data-sync]')].every(v => v.paused)"
    )
    page.wait_for_function(
        f"(() => {{ const t = {times}; return Math.max(...t) - Math.min(...t) < 0.01; }})()"
    )
    before = page.evaluate(times)[0]
    page.keyboard.press(".")
    page.wait_for_function(f"{times}.every(t => Math.abs(t - ({before} + 1 / 24)) < 0.01)")
    page.keyboard.press(",")
    page.keyboard.press(",")
    page.wait_for_function(f"{times}.every(t => Math.abs(t - ({before} - 1 / 24)) < 0.01)")

    # Remix the first run: the form comes back filled in, and the new run knows its parent.
    page.locator(".compare-cell a", has_text="Run 1").click()
    page.wait_for_url(RUN_URL)
    parent = RUN_URL.search(page.url).group(1)
    page.click("#run-side >> text=Remix")
    expect(page.locator("#id_prompt")).to_have_value("@Video1 as a watercolour")
    expect(page.locator(".lineage")).to_contain_text("Remix of")
    page.fill("#id_prompt", "@Video1 as a watercolour, at dusk")
    page.click("button.primary")
    page.wait_for_url(RUN_URL)
    assert RUN_URL.search(page.url).group(1) != parent
    expect(page.locator("#run-side .lineage")).to_contain_text("Remix of")
    assert stack.run(RUN_URL.search(page.url).group(1))["parent_id"] is not None


# The page's visibility under the test's control (headless chromium's tabs are always
# visible), and a Notification that records instead of showing, already allowed.
BACKGROUND_TAB = """
(() => {
  window.__hidden = false;
  Object.defineProperty(document, "hidden", { get: () => window.__hidden });
  Object.defineProperty(document, "visibilityState",
                        { get: () => (window.__hidden ? "hidden" : "visible") });
  window.__notes = [];
  window.Notification = class {
    constructor(title, options) { window.__notes.push({ title: title, ...options }); }
    static get permission() { return "granted"; }
    static requestPermission() { return Promise.resolve("granted"); }
  };
})();
"""
SET_HIDDEN = """hidden => {
  window.__hidden = hidden;
  document.dispatchEvent(new Event("visibilitychange"));
}"""


def test_the_title_counts_live_runs_and_a_background_tab_is_told_when_one_finishes(
    page: Page, stack: Stack, good_video: Path
) -> None:
    sign_up(page, stack, "nora")
    page.add_init_script(BACKGROUND_TAB)

    # A run finishing while its tab is in the background: the status card stops polling,
    # the in-flight read goes on, and the title and a notification say it is done.
    page.reload()
    # The run page's first read fails (a restart, say): what the page knows is kept, and
    # it asks again.
    failed: list[str] = []

    def fail_once(route: Route) -> None:
        if failed:
            route.continue_()
        else:
            failed.append(route.request.url)
            route.fulfill(status=502, body="Bad gateway")

    page.route("**/runs/in-flight", fail_once)
    page.fill("#id_prompt", PROMPT)
    page.set_input_files("#id_reference_video", str(good_video))
    page.select_option("#id_duration", "3")
    page.click("button.primary")
    page.wait_for_url(RUN_URL)
    page.evaluate(SET_HIDDEN, True)
    run_url = RUN_URL.search(page.url).group(0)
    expect(page).to_have_title(re.compile(r"^⏳ 1 running · "))
    page.wait_for_function("document.title.startsWith('✅ 1 finished · ')", timeout=60_000)
    notes = page.evaluate("window.__notes")
    assert [(note["body"], note["tag"]) for note in notes] == [("Your run is ready.", run_url)]
    assert failed, "the failing read was never made"
    expect(page.locator("#status-card")).not_to_have_attribute("data-status", "completed")

    # Back in front: the title is plain again and the card catches up at once.
    page.evaluate(SET_HIDDEN, False)
    expect(page.locator("#status-card")).to_have_attribute("data-status", "completed")
    assert not page.title().startswith(("✅", "⏳"))
    assert len(page.evaluate("window.__notes")) == 1, "told twice"

    # A page with no status card on it counts the user's live runs too.
    page.goto("/")
    page.fill("#id_prompt", PROMPT)
    page.select_option("#id_reference", index=1)  # the clip uploaded above
    page.select_option("#id_duration", "3")
    page.click("button.primary")
    page.wait_for_url(RUN_URL)
    page.goto("/runs/")
    expect(page).to_have_title(re.compile(r"^⏳ 1 running · History"))
    expect(page).to_have_title(re.compile(r"^History"), timeout=60_000)
    assert len(page.evaluate("window.__notes")) == 0, "a visible tab was notified"

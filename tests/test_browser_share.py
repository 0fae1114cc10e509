"""A share link in a real browser (Debian's chromium through Playwright): the owner makes
one on a finished run's page, and a logged-out visitor opens it, the video plays, and the
tags a chat app unfurls from are there with absolute URLs that answer without a session.

No stack and no simulator: the run is built in the database with a real clip
(tests/builders.py), and pytest-django's live server serves the app.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.builders import make_run
from tests.test_browser import VIEWPORT

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

UNFURL_TAGS = ["og:video", "og:video:secure_url", "og:image", "twitter:player", "og:url"]
META = """names => Object.fromEntries(names.map(name => {
  const tag = document.querySelector(`meta[property="${name}"], meta[name="${name}"]`);
  return [name, tag && tag.content];
}))"""


@pytest.fixture
def visitor(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh context: no cookies, nobody signed in."""
    context = browser.new_context(viewport=VIEWPORT)
    yield context
    context.close()


def test_it_opens_a_share_link_logged_out_with_its_unfurl_tags(
    owner_page: Page, visitor: BrowserContext, live_server, owner, clip
) -> None:
    run = make_run(owner, clip, prompt="@Video1 paper boats on a rainy street")

    # The owner picks an expiry (the sentence follows it) and creates the link in place.
    owner_page.goto(run.get_absolute_url())
    panel = owner_page.locator("#share-links")
    expect(panel.locator("[data-share-until]")).to_contain_text("until ")
    owner_page.select_option("#share-expires", "never")
    expect(panel.locator("[data-share-until]")).to_have_text("until you revoke it")
    owner_page.evaluate("window.__noReload = 1")
    panel.get_by_role("button", name="Create share link").click()
    share_input = owner_page.locator("#share-links input.share-url")
    expect(share_input).to_have_count(1)
    expect(owner_page.locator("#share-links")).to_contain_text("Never expires")
    assert owner_page.evaluate("window.__noReload") == 1, "creating the link reloaded the page"
    share_url = share_input.input_value()
    assert share_url.startswith(live_server.url + "/s/"), share_url

    # A visitor with no session: the page, a playing video, and the unfurl tags.
    page = visitor.new_page()
    page.set_default_timeout(10_000)
    response = page.goto(share_url)
    assert response is not None and response.status == 200
    expect(page.get_by_role("link", name="Log in")).to_be_visible()
    expect(page.locator("h1.prompt")).to_have_text("@Video1 paper boats on a rainy street")
    page.eval_on_selector("#result-video", "v => { v.muted = true; return v.play(); }")
    page.wait_for_function(
        "() => { const v = document.querySelector('#result-video');"
        " return v.readyState >= 2 && v.currentTime > 0; }"
    )
    assert page.eval_on_selector("#result-video", "v => v.error") is None

    tags = page.evaluate(META, [*UNFURL_TAGS, "twitter:card", "og:video:type"])
    assert tags["twitter:card"] == "player" and tags["og:video:type"] == "video/mp4"
    assert tags["og:url"] == share_url
    for name in UNFURL_TAGS:
        url = tags[name]
        assert url and url.startswith(live_server.url + "/s/"), (name, url)
        answer = visitor.request.get(url, max_redirects=0)
        assert answer.status == 200, (name, url, answer.status)

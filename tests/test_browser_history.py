"""The history in a real browser (Debian's chromium, Playwright): a star and a note change in
place without leaving the page, a search swaps only the results and puts the filters in the
address bar (so Back returns to the unfiltered list), and the thumbnails load.

No stack and no simulator: pytest-django's live server serves the app.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from playground.runs.models import Run
from tests.builders import make_reference, make_run

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_it_stars_notes_and_searches_in_place(owner_page: Page, owner, clip) -> None:
    page = owner_page
    reference = make_reference(owner, clip)
    neon = make_run(owner, clip, reference=reference, prompt="@Video1 under neon rain")
    make_run(owner, clip, reference=reference, prompt="@Video1 as a watercolour")
    page.goto("/runs/")
    row = page.locator("table.history tbody tr").filter(has_text="neon rain")
    page.evaluate("window.stayed = true")  # gone if anything reloads the page

    row.get_by_role("button", name="Star").click()
    expect(row.get_by_role("button", name="Star")).to_have_attribute("aria-pressed", "true")
    row.locator("a.note").click()
    row.get_by_label("Note on this run").fill("keeper")
    row.get_by_label("Note on this run").press("Enter")
    expect(row.locator("a.note")).to_have_text("keeper")

    page.get_by_label("Search prompts").fill("neon")
    expect(page.locator("table.history tbody tr")).to_have_count(1)
    expect(page).to_have_url(re.compile(r"/runs/\?q=neon"))
    assert page.evaluate("window.stayed") is True
    thumb = page.locator("table.history img.thumb").first
    expect(thumb).to_have_js_property("complete", True)
    assert thumb.evaluate("img => img.naturalWidth") == 96

    page.go_back()
    expect(page.locator("table.history tbody tr")).to_have_count(2)
    after = Run.objects.get(pk=neon.pk)
    assert after.starred and after.note == "keeper"

"""The prompt box and reference images in a real browser (Debian's chromium, Playwright):
@Image1 goes in at the cursor, a citation of an image not attached is warned about before
sending and refused by the server, an upload is previewed as @Image2 and comes back picked
after an error, and everything still works after the htmx re-render.

No stack and no simulator: pytest-django's live server serves the app; the library video is
a row (the form only picks it), the images are real PNGs made with Pillow.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.core.files.uploadedfile import UploadedFile
from PIL import Image
from playwright.sync_api import Page, expect

from playground.runs.images import store_image
from playground.runs.models import Reference
from tests.builders import make_reference, make_run
from tests.stack import ROOT

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT = ROOT / "test-artifacts" / "screenshot-images.png"


def png(path: Path, colour: tuple[int, int, int]) -> Path:
    Image.new("RGB", (400, 400), colour).save(path)
    return path


def test_it_cites_images_at_the_cursor_and_warns_of_one_not_attached(
    owner_page: Page, owner, tmp_path: Path
) -> None:
    page = owner_page
    make_reference(owner)  # a video to pick
    library = png(tmp_path / "library.png", (200, 40, 40))
    data = library.read_bytes()
    store_image(owner, UploadedFile(io.BytesIO(data), "library.png", len(data)))
    make_run(owner, prompt="@Video1 in the rain, neon reflections")
    upload = png(tmp_path / "upload.png", (40, 60, 220))

    page.goto("/")
    box = page.locator("[data-prompt-box]")
    prompt = page.locator("#id_prompt")
    expect(box.get_by_role("button", name="@Video1")).to_be_visible()
    expect(box.get_by_role("button", name="@Image1")).to_be_hidden()  # no image attached yet

    # A recent prompt fills the box.
    box.locator("summary").click()
    box.get_by_role("button", name="@Video1 in the rain, neon reflections").click()
    expect(prompt).to_have_value("@Video1 in the rain, neon reflections")

    page.locator(".image-pick input").check()
    expect(page.locator(".image-pick [data-image-tag]")).to_have_text("@Image1")
    prompt.fill("@Video1 at dusk")
    prompt.evaluate("el => el.setSelectionRange(7, 7)")  # right after @Video1
    box.get_by_role("button", name="@Image1").click()
    expect(prompt).to_have_value("@Video1 @Image1 at dusk")

    warning = box.locator("[data-citation-warning]")
    expect(warning).to_be_hidden()
    prompt.press("End")
    prompt.press_sequentially(" and @Image3")
    expect(warning).to_have_text("The prompt cites @Image3, but only 1 image is attached.")

    page.set_input_files("#id_reference_images", str(upload))
    expect(page.locator("[data-image-previews] figcaption")).to_contain_text("@Image2 upload.png")
    expect(box.get_by_role("button", name="@Image2")).to_be_visible()
    expect(warning).to_have_text("The prompt cites @Image3, but only 2 images are attached.")
    page.locator(".columns").screenshot(path=str(SCREENSHOT))

    # The server refuses it too, and the form comes back (through htmx) with the upload
    # stored and picked as @Image2, the box wired again.
    page.get_by_role("button", name="Generate").click()
    errors = box.locator(".errors")
    expect(errors).to_have_text("The prompt cites @Image3, but only 2 images are attached.")
    expect(warning).to_be_hidden()  # said once, by the server
    stored = Reference.objects.get(name="upload.png")
    pick = page.locator(f".image-pick:has(input[value='{stored.code}'])")
    expect(pick.locator("input")).to_be_checked()
    expect(pick.locator("[data-image-tag]")).to_have_text("@Image2")
    prompt.fill("@Video1 beside")
    prompt.press("End")
    box.get_by_role("button", name="@Image2").click()
    expect(prompt).to_have_value("@Video1 beside @Image2")

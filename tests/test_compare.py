"""Compare, remix and export: looking at runs side by side and taking one further."""

from __future__ import annotations

import json
import re
import shlex

import pytest
from django.urls import reverse

from playground.lib.worddiff import Piece, word_diff
from playground.runs.models import Run, RunImage
from playground.runs.models.runs import REMIXES_SHOWN
from playground.runs.references import reference_for_url
from tests.builders import generate_data, make_reference, make_run


def test_it_diffs_prompts_word_by_word():
    pieces = word_diff("@Video1 at golden hour, warm light", "@Video1 at night, warm  light")
    assert pieces == [
        Piece("same", "@Video1 at "),
        Piece("removed", "golden hour, "),
        Piece("added", "night, "),
        Piece("same", "warm  light"),  # re-spacing is no change
    ]
    assert "".join(p.text for p in pieces if p.kind != "removed") == "@Video1 at night, warm  light"


def test_it_replaces_a_long_repetitive_middle_whole_instead_of_diffing_it():
    # Two 2,500-character prompts of one repeated word: word by word, SequenceMatcher
    # takes seconds of CPU per pair (the compare page does three). Kept: what they share.
    before = "@Video1 " + "a " * 1240 + "end"
    after = "@Video1 " + "a b " * 620 + "end"
    pieces = word_diff(before, after)
    assert [p.kind for p in pieces] == ["same", "removed", "added", "same"]
    assert pieces[0].text.startswith("@Video1 a ") and pieces[-1].text == "end"
    assert "".join(p.text for p in pieces if p.kind != "removed") == after
    assert "".join(p.text for p in pieces if p.kind != "added") == before


@pytest.fixture
def two_runs(owner, clip):
    reference = make_reference(owner, clip)
    first = make_run(owner, clip, reference=reference, prompt="@Video1 as a watercolour")
    second = make_run(
        owner, clip, reference=reference, prompt="@Video1 as an oil painting", duration=5
    )
    return first, second


def compare_url(*runs):
    return reverse("compare") + "?" + "&".join(f"run={run.code}" for run in runs)


def test_it_compares_runs_with_their_differences_marked(owner_client, two_runs):
    first, second = two_runs
    html = owner_client.get(compare_url(first, second)).content.decode()
    assert html.count("<video data-sync") == 3  # the shared reference once, and both results
    assert reverse("run_result", args=[second.code]) in html
    assert "<del>a watercolour</del>" in html and "<ins>an oil painting</ins>" in html
    assert '<tr class="differs"><th scope="row">Duration</th><td>3 s</td><td>5 s</td>' in html
    assert '<tr><th scope="row">Aspect ratio</th>' in html  # the same: not marked


@pytest.mark.parametrize("count", [1, 5])
def test_it_asks_for_two_to_four_runs(owner_client, owner, clip, count):
    runs = [make_run(owner, clip) for _ in range(count)]
    response = owner_client.get(compare_url(*runs))
    assert response.status_code == 400
    picked = count if count <= 4 else "more"
    assert f"Pick 2 to 4 finished runs to compare (you picked {picked})" in (
        response.content.decode()
    )


def test_it_counts_runs_once_however_often_they_are_picked(owner_client, owner, clip):
    runs = [make_run(owner, clip) for _ in range(5)]
    response = owner_client.get(compare_url(runs[0], *runs))  # the first twice: still five
    assert response.status_code == 400 and b"(you picked more)" in response.content


def test_it_takes_a_run_code_in_any_spelling(owner_client, two_runs):
    first, second = two_runs
    url = reverse("compare") + f"?run={str(first.code).upper()}&run={second.code.hex}"
    assert owner_client.get(url).status_code == 200


def test_it_never_compares_another_users_run(owner_client, stranger, two_runs, clip):
    theirs = make_run(stranger, clip)
    assert owner_client.get(compare_url(two_runs[0], theirs)).status_code == 404


def test_it_compares_only_finished_runs(owner_client, owner, two_runs):
    live = make_run(owner, status="processing", reference=two_runs[0].reference)
    response = owner_client.get(compare_url(two_runs[0], live))
    assert response.status_code == 400 and b"1 of the runs you picked has none yet" in (
        response.content
    )
    assert owner_client.get(reverse("compare") + "?run=not-a-uuid&run=x").status_code == 404


def test_it_remixes_a_run_and_remembers_its_parent(owner_client, owner, two_runs):
    parent = two_runs[0]
    form = owner_client.get(reverse("generate") + f"?from={parent.code}").content.decode()
    assert f'value="{parent.code}"' in form and "Remix of" in form
    assert "@Video1 as a watercolour" in form
    data = generate_data(
        prompt="@Video1 as a watercolour, at dusk",
        reference=str(parent.reference.code),
        parent=str(parent.code),
    )
    response = owner_client.post(reverse("generate"), data)
    child = Run.objects.get(prompt="@Video1 as a watercolour, at dusk")
    assert response.url == child.get_absolute_url() and child.parent == parent
    assert "Remix of" in owner_client.get(child.get_absolute_url()).content.decode()
    parent_page = owner_client.get(parent.get_absolute_url()).content.decode()
    assert "Remixed as" in parent_page and child.get_absolute_url() in parent_page


def test_a_remix_comes_back_with_every_setting_and_image_of_its_parent(owner_client, owner, clip):
    parent = make_run(
        owner, clip, prompt="@Video1 with @Image1 then @Image2", duration=7,
        aspect_ratio="9:16", keep_audio=True,
    )  # fmt: skip
    first, second = (make_reference(owner, clip, kind="image") for _ in range(2))
    RunImage.objects.create(run=parent, reference=second, position=1)
    RunImage.objects.create(run=parent, reference=first, position=2)

    form = owner_client.get(reverse("generate") + f"?from={parent.code}").content.decode()

    assert re.search(rf'<option value="{parent.reference.code}" selected>', form)
    assert re.search(r'<option value="7" selected>7 s</option>', form)
    assert re.search(r'<option value="9:16" selected>', form)
    assert re.search(r'name="keep_audio"[^>]*checked', form)
    ticked = re.findall(r'name="images" value="([0-9a-f-]{36})" checked', form)
    assert ticked == [str(second.code), str(first.code)]
    assert "@Video1 with @Image1 then @Image2</textarea>" in form


def test_a_remix_of_a_deleted_run_says_so_instead_of_linking_it(owner_client, owner, clip):
    parent = make_run(owner, clip)
    child = make_run(owner, clip, parent=parent, reference=parent.reference)
    owner_client.post(reverse("run_delete", args=[parent.code]))
    page = owner_client.get(child.get_absolute_url()).content.decode()
    assert "Remix of a deleted run" in page and parent.get_absolute_url() not in page


def test_it_never_takes_another_users_run_as_a_parent(owner_client, owner, stranger, clip):
    theirs = make_run(stranger, clip)
    reference = make_reference(owner, clip)
    data = generate_data(reference=str(reference.code), parent=str(theirs.code))
    owner_client.post(reverse("generate"), data)
    assert Run.objects.get(user=owner).parent is None


def test_it_exports_a_run_as_json_and_curl_without_the_key(owner_client, owner, clip, settings):
    settings.AIGATEWAY_API_KEY = "sk-live-secret-key"
    run = make_run(owner, clip, prompt='it\'s $HOME `id` "quoted"', keep_audio=True)
    html = owner_client.get(run.get_absolute_url()).content.decode()
    assert "sk-live-secret-key" not in html
    assert "Bearer $AIGATEWAY_API_KEY" in html
    body = json.loads(_unescape(html.split('data-export="json">')[1].split("</pre>")[0]))
    assert body["model"] == "kuaishou/kling-video-o1-video-to-video-reference"
    assert body["prompt"] == run.prompt and body["duration"] == 3 and body["keep_audio"] is True
    assert reference_for_url(body["video_url"]) == run.reference  # signed, ours
    curl = _unescape(html.split('data-export="curl">')[1].split("</pre>")[0])
    words = shlex.split(curl.replace("\\\n", " "))
    assert words[:3] == ["curl", "-X", "POST"] and words[3].endswith("/v1/videos/generations")
    assert json.loads(words[words.index("-d") + 1]) == body  # the shell gets the body intact


def _unescape(text: str) -> str:
    return (
        text.replace("&quot;", '"').replace("&#x27;", "'").replace("&lt;", "<")
        .replace("&gt;", ">").replace("&amp;", "&")
    )  # fmt: skip


def test_a_run_page_lists_twenty_remixes_and_says_there_are_more(owner_client, owner, clip):
    parent = make_run(owner, clip)
    for n in range(REMIXES_SHOWN + 1):
        make_run(owner, parent=parent, reference=parent.reference, prompt=f"@Video1 remix {n}")
    page = owner_client.get(parent.get_absolute_url()).content.decode()
    assert page.count("Remixed as") == REMIXES_SHOWN
    assert f"remix {REMIXES_SHOWN - 1}" in page and f"remix {REMIXES_SHOWN}”" not in page
    assert "…and more remixes" in page

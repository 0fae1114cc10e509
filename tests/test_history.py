"""The history: search and filters, pages, stars and notes, deleting several runs, the
spend chart, and thumbnails at the size the lists show them."""

from __future__ import annotations

import html
import io
import re
import uuid
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from playground.lib import media, thumbnails
from playground.lib.thumbnails import thumbnail_name
from playground.runs.models import Run
from playground.runs.spend import spend_chart
from tests.builders import is_stored, make_reference, make_run, served_bytes

pytestmark = pytest.mark.django_db

HTMX_RESULTS = {"HX-Request": "true", "HX-Target": "history-results"}
HTMX = {"HX-Request": "true"}


def bulk_runs(user, reference, count: int, **fields) -> None:
    """`count` finished runs in one INSERT, a minute apart, newest first."""
    now = timezone.now()
    Run.objects.bulk_create(
        Run(
            user=user,
            reference=reference,
            idempotency_key=uuid.uuid4(),
            prompt=f"@Video1 take {i}",
            status="completed",
            estimated_cost_micros=504_000,
            billed_cost_micros=504_000,
            simulated=django_settings.SIMULATOR_ENABLED,
            created_at=now - timedelta(minutes=i),
            **fields,
        )
        for i in range(count)
    )


def listed(response) -> list[str]:
    """The run codes a history answer lists, in order."""
    return re.findall(
        r'name="run" value="([0-9a-f-]{36})" form="selection"', response.content.decode()
    )


def text_of(response) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


# --- Finding runs -------------------------------------------------------------------------


def test_it_searches_prompts_by_every_word(owner_client, owner):
    reference = make_reference(owner)
    neon = make_run(owner, reference=reference, prompt="@Video1 under NEON rain at night")
    make_run(owner, reference=reference, prompt="@Video1 neon signs, daylight")
    make_run(owner, reference=reference, prompt="@Video1 as a watercolour")

    found = listed(owner_client.get(reverse("history"), {"q": "neon  night"}))

    assert found == [str(neon.code)]
    assert len(listed(owner_client.get(reverse("history"), {"q": "neon"}))) == 2


def test_it_filters_by_status_star_and_dates(owner_client, owner):
    reference = make_reference(owner)
    now = timezone.now()
    done = make_run(owner, reference=reference, starred=True, created_at=now - timedelta(days=3))
    failed = make_run(owner, reference=reference, status="failed", created_at=now)
    live = make_run(owner, reference=reference, status="processing", provider_job_id="job_1")
    cancelled = make_run(owner, reference=reference, status="cancelled")
    old_day = timezone.localdate(done.created_at)

    def codes(**query) -> set[str]:
        return set(listed(owner_client.get(reverse("history"), query)))

    assert codes(status="completed") == {str(done.code)}
    assert codes(status="failed") == {str(failed.code)}
    assert codes(status="active") == {str(live.code)}
    assert codes(status="cancelled") == {str(cancelled.code)}
    assert codes(starred="on") == {str(done.code)}
    assert codes(since=old_day.isoformat(), until=old_day.isoformat()) == {str(done.code)}
    assert str(done.code) not in codes(since=(old_day + timedelta(days=1)).isoformat())
    assert codes(until=(old_day - timedelta(days=1)).isoformat()) == set()


def test_it_says_at_the_field_what_is_wrong_with_a_date(owner_client, owner):
    run = make_run(owner)

    response = owner_client.get(reverse("history"), {"since": "2024-02-30", "q": "watercolour"})

    assert response.status_code == 200
    error = re.search(r'id="id_since-error"[^>]*>([^<]+)<', response.content.decode())
    assert error and "valid date" in error.group(1)
    assert listed(response) == [str(run.code)]  # the other filters still apply
    backwards = owner_client.get(reverse("history"), {"since": "2025-03-02", "until": "2025-03-01"})
    assert "The end date is before the start date." in backwards.content.decode()


def test_it_keeps_the_filters_in_the_page_links(owner_client, owner):
    bulk_runs(owner, make_reference(owner), 30)

    response = owner_client.get(reverse("history"), {"q": "take", "status": "completed"})

    assert len(listed(response)) == 25
    link = html.unescape(re.search(r'href="([^"]*page=2[^"]*)"', response.content.decode())[1])
    assert "q=take" in link and "status=completed" in link
    assert len(listed(owner_client.get(reverse("history") + link))) == 5


def test_it_answers_htmx_with_the_results_and_the_fields_messages(owner_client, owner):
    make_run(owner)

    response = owner_client.get(reverse("history"), {"until": "soon"}, headers=HTMX_RESULTS)

    content = response.content.decode()
    assert content.lstrip().startswith('<div id="history-results"')  # no page around it
    assert "<html" not in content and "spend-chart" not in content
    assert re.search(r'id="id_until-error"[^>]*hx-swap-oob="true">[^<]*valid date', content)
    assert response["Vary"].count("HX-Target")


def test_it_reads_a_fixed_number_of_queries_however_many_runs(owner_client, owner, stranger):
    reference = make_reference(owner)
    bulk_runs(owner, reference, 10)

    def queries(query: dict) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert owner_client.get(reverse("history"), query).status_code == 200
        return len(captured)

    few = [queries({}), queries({"q": "take 1", "starred": "on"})]
    bulk_runs(owner, reference, 990)
    many = [queries({}), queries({"q": "take 1", "starred": "on"})]

    assert few == many


# --- Stars and notes ----------------------------------------------------------------------


def test_it_stars_a_run_inline_and_a_replay_changes_nothing(owner_client, owner):
    run = make_run(owner)
    url = reverse("run_star", args=[run.code])

    first = owner_client.post(url, {"starred": "1"}, headers=HTMX)
    again = owner_client.post(url, {"starred": "1"}, headers=HTMX)

    assert Run.objects.get(pk=run.pk).starred
    assert 'aria-pressed="true"' in first.content.decode()
    assert 'aria-pressed="true"' in again.content.decode()  # still starred, not toggled back
    assert first.content.decode().startswith('<button class="star on"')


def test_it_stars_without_js_and_returns_to_a_safe_page(owner_client, owner):
    run = make_run(owner, starred=True)
    url = reverse("run_star", args=[run.code])
    back = reverse("history") + "?q=watercolour"

    response = owner_client.post(url, {"next": back})  # no value: toggles
    assert response.status_code == 302 and response["Location"] == back
    assert not Run.objects.get(pk=run.pk).starred

    elsewhere = owner_client.post(url, {"starred": "1", "next": "https://evil.example/"})
    assert elsewhere["Location"] == run.get_absolute_url()


def test_it_edits_a_note_in_place_in_the_history(owner_client, owner):
    run = make_run(owner)
    url = reverse("run_note", args=[run.code])
    row = owner_client.get(reverse("history")).content.decode()
    assert f'hx-get="{url}"' in row and "Add a note" in row

    editor = owner_client.get(url, headers=HTMX)  # the link turns into the form
    assert f'<form id="note-{run.code}"' in editor.content.decode()
    saved = owner_client.post(url, {"note": "  keeper, try 16:9  ", "in_list": "1"}, headers=HTMX)

    assert Run.objects.get(pk=run.pk).note == "keeper, try 16:9"
    assert saved.content.decode().startswith('<a class="note"')  # text again
    assert ">keeper, try 16:9</a>" in saved.content.decode()
    plain = owner_client.get(url)  # without JS: the run's page has the form
    assert plain["Location"] == f"{run.get_absolute_url()}#marks"


def test_it_edits_a_note_and_the_star_on_the_run_page(owner_client, owner):
    run = make_run(owner, note="first take")
    page = owner_client.get(run.get_absolute_url()).content.decode()
    assert 'value="first take"' in page and reverse("run_star", args=[run.code]) in page

    url = reverse("run_note", args=[run.code])
    saved = owner_client.post(url, {"note": "second", "next": run.get_absolute_url()}, headers=HTMX)
    assert 'value="second"' in saved.content.decode() and "Saved" in saved.content.decode()
    plain = owner_client.post(url, {"note": "", "next": run.get_absolute_url()})
    assert plain["Location"] == run.get_absolute_url()
    assert Run.objects.get(pk=run.pk).note == ""


def test_it_refuses_a_note_too_long_and_keeps_what_was_typed(owner_client, owner):
    run = make_run(owner, note="short")
    url = reverse("run_note", args=[run.code])
    long = "x" * 501

    response = owner_client.post(url, {"note": long}, headers=HTMX)

    content = response.content.decode()
    assert "at most 500 characters" in content and f'value="{long}"' in content
    assert Run.objects.get(pk=run.pk).note == "short"
    plain = owner_client.post(url, {"note": long, "next": reverse("history")}, follow=True)
    assert "at most 500 characters" in plain.content.decode()


@pytest.mark.parametrize("name", ["run_star", "run_note"])
def test_it_answers_404_to_a_stranger_marking_the_owners_run(stranger_client, owner, name):
    run = make_run(owner)

    response = stranger_client.post(
        reverse(name, args=[run.code]), {"starred": "1", "note": "mine"}
    )

    assert response.status_code == 404
    after = Run.objects.get(pk=run.pk)
    assert (after.starred, after.note) == (False, "")


# --- Deleting several runs -----------------------------------------------------------------


def test_it_deletes_selected_runs_after_a_confirmation(owner_client, owner, stranger, clip):
    done = make_run(owner, clip)
    failed = make_run(owner, status="failed", reference=done.reference)
    live = make_run(owner, status="processing", reference=done.reference, provider_job_id="job_x")
    theirs = make_run(stranger)
    codes = [str(r.code) for r in (done, failed, live, theirs)]
    before = owner_client.get(reverse("history")).content.decode()
    month_before = re.search(r'id="spend-month">([^<]+)<', before)[1]
    back = reverse("history") + "?status=&q="

    confirm = owner_client.get(reverse("runs_delete"), {"run": codes, "next": back})

    text = text_of(confirm)
    assert "Delete 2 runs?" in text and "stays in your totals" in text
    assert "1 selected run still in progress will not be deleted" in text
    assert theirs.prompt not in confirm.content.decode()
    assert Run.objects.visible().count() == 4  # nothing deleted yet

    response = owner_client.post(reverse("runs_delete"), {"run": codes, "next": back})

    assert response.status_code == 302 and response["Location"] == back
    assert set(Run.objects.visible().values_list("pk", flat=True)) == {live.pk, theirs.pk}
    assert not is_stored(done.result.name)
    after = owner_client.get(reverse("history")).content.decode()
    assert re.search(r'id="spend-month">([^<]+)<', after)[1] == month_before


def test_it_answers_404_when_no_selected_run_is_yours(owner_client, stranger_client, owner):
    run = make_run(owner)

    for method in ("get", "post"):
        response = getattr(stranger_client, method)(reverse("runs_delete"), {"run": [run.code]})
        assert response.status_code == 404
    assert Run.objects.visible().filter(pk=run.pk).exists()
    nothing = owner_client.get(reverse("runs_delete"))
    assert nothing.status_code == 302 and nothing["Location"] == reverse("history")


def test_it_confirms_a_single_delete_from_the_run_page(owner_client, owner):
    run = make_run(owner)
    page = html.unescape(owner_client.get(run.get_absolute_url()).content.decode())

    link = re.search(r'href="(/runs/delete\?[^"]+)">Delete run…', page)[1]
    assert "Delete 1 run?" in text_of(owner_client.get(link))
    response = owner_client.post(
        reverse("runs_delete"), {"run": run.code, "next": run.get_absolute_url()}
    )
    assert response["Location"] == reverse("history")  # the run's page is gone
    assert Run.objects.get(pk=run.pk).deleted_at is not None


# --- Spending ----------------------------------------------------------------------------


def test_it_charts_each_days_estimate_and_bill(owner, stranger, settings):
    reference = make_reference(owner)
    now = timezone.now()
    make_run(owner, reference=reference, created_at=now)  # $0.504 billed
    make_run(owner, reference=reference, created_at=now, status="failed")  # billed $0
    make_run(
        owner, reference=reference, created_at=now - timedelta(days=2), billed_cost_micros=700_000
    )
    gone = make_run(owner, reference=reference, created_at=now - timedelta(days=2))
    gone.discard()  # still costs
    make_run(owner, reference=reference, created_at=now - timedelta(days=40))  # out of range
    make_run(owner, reference=reference, created_at=now, simulated=not settings.SIMULATOR_ENABLED)
    make_run(stranger, created_at=now)

    chart = spend_chart(owner, today=timezone.localdate(now))

    days = {d.day: (d.estimated, d.billed) for d in chart.days if d.estimated}
    today, two_ago = timezone.localdate(now), timezone.localdate(now - timedelta(days=2))
    assert days == {today: (1_008_000, 504_000), two_ago: (1_008_000, 1_204_000)}
    assert len(chart.days) == 30 and chart.days[-1].day == today
    # The month's figure is the one budgets count (runs/limits.py).
    assert (
        chart.month_micros
        == Run.objects.for_user(owner).counted_here().this_month().committed_micros()
    )
    assert chart.budget_y is None
    assert chart.estimated_path.count("M") == chart.billed_path.count("M") == 2  # a bar a day


def test_it_draws_the_budget_line_only_with_a_budget(owner_client, owner, settings):
    make_run(owner)
    settings.MONTHLY_BUDGET_USD = ""
    assert 'class="budget-line"' not in owner_client.get(reverse("history")).content.decode()

    settings.MONTHLY_BUDGET_USD = "25.00"
    content = owner_client.get(reverse("history")).content.decode()
    assert 'class="budget-line"' in content and "Budget $25.000" in content
    assert '<svg class="spend-chart"' in content and '<title id="spend-title">' in content


# --- Thumbnails ----------------------------------------------------------------------------


def spy(function, calls: list[object]):
    def called(*args: object) -> object:
        calls.append(args)
        return function(*args)

    return called


def test_it_serves_a_small_cached_thumbnail(
    owner_client, stranger_client, owner, clip, monkeypatch
):
    run = make_run(owner, clip)
    url = reverse("run_thumb", args=[run.code])
    made: list[object] = []
    monkeypatch.setattr(thumbnails, "_cover_size", spy(thumbnails._cover_size, made))

    response = owner_client.get(url)

    data = served_bytes(response)
    with Image.open(io.BytesIO(data)) as image:
        # The box a row shows it in (96×54 CSS px), covered: never smaller on either side.
        assert image.format == "JPEG" and image.size == (96, 72)  # a 4:3 clip
    thumb = thumbnail_name(run.poster.name)
    assert is_stored(thumb) and "private" in response["Cache-Control"]
    assert made
    made.clear()
    checks: list[object] = []
    storage = default_storage._wrapped  # the instance itself: patching the lazy proxy
    for name in ("exists", "get_modified_time"):  # can't be undone on every backend
        monkeypatch.setattr(storage, name, spy(getattr(storage, name), checks))
    assert served_bytes(owner_client.get(url)) == data
    assert made == []  # the stored one, not made again
    # Nor looked for again (a bucket answers each check with a request): only serving local
    # bytes reads the thumbnail's own size and date; a bucket's redirect reads nothing.
    assert checks == ([] if not media.is_local() else [(thumb,)])
    assert stranger_client.get(url).status_code == 404
    listed = f'src="{url}" alt="" width="96" height="54" loading="lazy" decoding="async"'
    assert listed in owner_client.get(reverse("history")).content.decode()

    run.discard()
    assert not is_stored(thumb)


def test_it_serves_a_references_thumbnail_to_its_owner_only(
    owner_client, stranger_client, owner, clip
):
    reference = make_reference(owner, clip)
    url = reverse("reference_thumb", args=[reference.code])

    response = owner_client.get(url)

    with Image.open(io.BytesIO(served_bytes(response))) as image:
        assert image.width <= 240
    assert stranger_client.get(url).status_code == 404


@pytest.mark.parametrize("param", ["until=9999-12-31", "since=0001-01-01"])
def test_it_answers_a_date_at_the_calendars_edge_with_a_message(owner_client, param):
    response = owner_client.get(reverse("history") + "?" + param)
    assert response.status_code == 200
    assert "Pick a date between year 1 and 9999." in response.content.decode()


def test_the_selection_goes_to_compare_from_the_history(owner_client, owner, clip):
    reference = make_reference(owner, clip)
    first, second = (
        make_run(owner, clip, reference=reference, prompt=f"@Video1 take {n}") for n in (1, 2)
    )
    page = owner_client.get(reverse("history")).content.decode()
    form = re.search(r'<form id="selection"[^>]*>.*?</form>', page, re.S)
    assert form is not None
    assert f'formaction="{reverse("compare")}"' in form.group(0)
    boxes = re.findall(r'<input[^>]*name="run"[^>]*form="selection"[^>]*>', page)
    assert len(boxes) == 2, "each row's checkbox belongs to the selection form"
    compare = owner_client.get(reverse("compare"), {"run": [str(first.code), str(second.code)]})
    assert compare.status_code == 200 and compare.content.decode().count("<video data-sync") == 3

"""Variants and batches: one press of Generate fans out into several runs, checked whole."""

from __future__ import annotations

import re
import uuid

import pytest
from django.urls import reverse

from playground.runs import batches
from playground.runs.limits import LimitReached, create_batch
from playground.runs.models import Batch, Run
from tests.builders import generate_data, make_reference, make_run


@pytest.fixture
def reference(owner, clip):
    return make_reference(owner, clip)


def post(client, reference, **fields):
    data = generate_data(reference=str(reference.code), **fields)
    return client.post(reverse("generate"), data), data


def test_it_plans_prompts_by_durations_by_repeats():
    planned = batches.plan(["a", "b"], [3, 5], 2)
    assert [(v.prompt, v.duration) for v in planned] == [
        ("a", 3), ("a", 3), ("a", 5), ("a", 5), ("b", 3), ("b", 3), ("b", 5), ("b", 5),
    ]  # fmt: skip
    assert batches.estimated_micros(planned) == 4 * 168_000 * (3 + 5)


def test_it_makes_a_batch_of_every_variant_with_one_press(owner_client, owner, reference, settings):
    settings.MAX_INFLIGHT_RUNS_PER_USER = 12
    response, data = post(
        owner_client,
        reference,
        variants="@Video1 in the rain\n\n   \n@Video1 at night",  # blank lines are no runs
        more_durations=["5"],
        repeat="2",
    )
    batch = Batch.objects.get(user=owner)
    assert response.status_code == 302 and response.url == batch.get_absolute_url()
    runs = list(batch.runs.order_by("pk"))
    assert len(runs) == 3 * 2 * 2
    assert {r.prompt for r in runs} == {data["prompt"], "@Video1 in the rain", "@Video1 at night"}
    assert sorted({r.duration for r in runs}) == [3, 5]
    assert all(r.reference == reference and r.status == "pending" for r in runs)
    assert sum(r.estimated_cost_micros for r in runs) == 2 * 3 * 168_000 * (3 + 5)
    # The same form posted again (a double-click) lands on the same batch, makes nothing.
    again = owner_client.post(reverse("generate"), {**data, "reference": str(reference.code)})
    assert again.url == batch.get_absolute_url() and Run.objects.count() == 12


def test_it_makes_one_run_when_the_variants_box_is_empty(owner_client, owner, reference):
    response, _ = post(owner_client, reference, variants="\n \n")
    run = Run.objects.get(user=owner)
    assert response.url == run.get_absolute_url() and run.batch is None
    assert not Batch.objects.exists()


def test_it_shows_the_number_of_runs_and_their_total_before_submitting(owner_client, reference):
    response, _ = post(owner_client, reference, prompt="", variants="a\nb", repeat="2")
    assert response.status_code == 200  # no prompt: the form comes back, saying so
    page = owner_client.get(reverse("generate")).content.decode()
    assert 'data-variants-from="id_variants"' in page and 'data-repeat-from="id_repeat"' in page
    response, _ = post(owner_client, reference, variants="b\nc\nd", duration="5", prompt="")
    html = response.content.decode()
    assert "Write a prompt" in html


def test_it_shows_the_batch_estimate_on_a_form_that_comes_back(
    owner_client, owner, reference, settings
):
    settings.MONTHLY_BUDGET_USD = 1
    response, _ = post(owner_client, reference, variants="b\nc\nd", duration="5")
    html = response.content.decode()
    assert re.search(r"4 runs · \$3\.360", html)
    assert "These 4 runs would cost $3.360, but only $1.000" in html
    assert not Run.objects.exists() and not Batch.objects.exists()


def test_it_refuses_a_batch_over_the_cap_whole(owner_client, owner, reference, settings):
    settings.MAX_INFLIGHT_RUNS_PER_USER = 4
    make_run(owner, status="processing", reference=reference)
    response, _ = post(owner_client, reference, variants="b\nc\nd")
    assert response.status_code == 200
    assert "This batch makes 4 runs, but you can start only 3 more now" in response.content.decode()
    assert Run.objects.count() == 1 and not Batch.objects.exists()


def test_it_refuses_a_batch_too_big_for_one_press(owner_client, reference):
    lines = "\n".join(f"variant {n}" for n in range(7))
    response, _ = post(owner_client, reference, variants=lines, repeat="3")
    assert f"one press of Generate makes at most {batches.MAX_BATCH_RUNS}" in (
        response.content.decode()
    )
    assert not Run.objects.exists()


def test_it_checks_the_budget_again_when_creating_the_batch(owner, reference, settings):
    """The form's check can be raced; the one under the lock cannot."""
    settings.MONTHLY_BUDGET_USD = 1
    with pytest.raises(LimitReached, match="Nothing was sent"):
        create_batch(
            owner,
            batches.plan(["a", "b"], [5], 1),
            idempotency_key=uuid.uuid4(),
            reference=reference,
        )
    assert not Batch.objects.exists() and not Run.objects.exists()


def test_it_shows_every_card_of_a_batch_polling_on_its_own(owner_client, owner, reference, clip):
    batch = Batch.objects.create(user=owner, idempotency_key=uuid.uuid4())
    done = make_run(owner, clip, reference=reference, batch=batch)
    live = make_run(owner, status="processing", reference=reference, batch=batch)
    html = owner_client.get(batch.get_absolute_url()).content.decode()
    assert html.count('class="status-card') == 2
    assert html.count('"X-Card-Context": "batch"') == 2
    # Each cell carries a status key minted for its own run (signed with a timestamp, so
    # compare what the keys decode to rather than a key minted again a second later).
    keys = re.findall(r'"X-Status-Key": "([^"]+)"', html)
    assert sorted(map(Run.code_for_status_key, keys)) == sorted([str(live.code), str(done.code)])
    assert f'hx-get="{reverse("run_status", args=[live.code])}"' in html
    assert reverse("run_result", args=[done.code]) in html
    assert "1 of 2 done" in html and "Play all" in html
    # The batch's money: estimated for both, billed for the finished one so far.
    assert "estimated $1.008" in html and "bill $0.504 so far" in html
    # Each variant's whole prompt under its card (variants often differ near their end).
    for run in (done, live):
        assert html.count(f">{run.prompt}</span>") == 1
    # A card's poll in the grid answers the compact card, without the run page's side panel.
    poll = owner_client.get(
        reverse("run_status", args=[done.code]),
        headers={"HX-Request": "true", "X-Card-Context": "batch"},
    )
    assert poll.status_code == 286 and b"run-side" not in poll.content
    # It tells the page, so the batch's totals refresh at once rather than at their poll.
    assert poll.headers["HX-Trigger"] == '{"run-finished": {}}'
    assert "run-finished from:body" in html
    assert b'id="card-' in poll.content and b"data-tabs" not in poll.content


def test_it_stops_polling_the_totals_once_every_run_is_final(owner_client, owner, reference, clip):
    batch = Batch.objects.create(user=owner, idempotency_key=uuid.uuid4())
    run = make_run(owner, status="processing", reference=reference, batch=batch)
    headers = {"HX-Request": "true", "HX-Target": "batch-totals"}
    assert owner_client.get(batch.get_absolute_url(), headers=headers).status_code == 200
    Run.objects.filter(pk=run.pk).update(status="completed", billed_cost_micros=504_000)
    run.refresh_from_db()
    run.result = make_run(owner, clip, reference=reference).result  # a result on disk
    run.save(update_fields=["result"])
    final = owner_client.get(batch.get_absolute_url(), headers=headers)
    assert final.status_code == 286 and b"1 of 1 done" in final.content
    # The share panel comes along, now offering a link for the finished batch.
    assert b'id="share-links" class="share-links" hx-swap-oob="true"' in final.content
    assert b"Create share link" in final.content


def test_it_hides_a_batch_from_other_users(stranger_client, owner):
    batch = Batch.objects.create(user=owner, idempotency_key=uuid.uuid4())
    assert stranger_client.get(batch.get_absolute_url()).status_code == 404


def test_it_refuses_a_huge_variants_box_without_planning_it(owner_client, reference):
    """A hostile form asking for millions of runs is counted, not built."""
    lines = "\n".join(f"v{n}" for n in range(5_000))
    response, _ = post(
        owner_client, reference, variants=lines, more_durations=["4", "5", "6"], repeat="5"
    )
    assert response.status_code == 200
    assert "That is 5000 variants; one press of Generate makes at most 20" in (
        response.content.decode()
    )
    assert not Run.objects.exists()


def test_it_splits_variants_at_line_feeds_as_the_page_counts_them(owner_client, owner, reference):
    # CR LF as browsers send a textarea; U+2028 is not a line end on the page.
    post(owner_client, reference, variants="@Video1 in the rain\r\n@Video1 at\u2028night\r\n")
    prompts = sorted(Run.objects.filter(user=owner).values_list("prompt", flat=True))
    assert len(prompts) == 3
    assert "@Video1 at\u2028night" in prompts and "@Video1 in the rain" in prompts

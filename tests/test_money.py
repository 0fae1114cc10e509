"""Money: caps and budgets that hold under concurrency, the instance's budget, simulated
costs told apart from real ones, and a submit whose billing can't be known."""

from __future__ import annotations

import html
import re
import threading
import uuid
from datetime import timedelta

import pytest
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone

from playground.runs import steps
from playground.runs.models import Run
from playground.runs.tracker import track_until_idle
from playground.simulator import store
from tests.builders import ScriptedProvider, generate_data, make_reference, make_run, make_user

PRICE = 168_000


def text_of(response) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", response.content.decode()))


# --- limits under concurrency -----------------------------------------------------------------


def submit_in_parallel(user, count: int, **fields: object) -> list[int]:
    """`count` Generate posts by `user` released at one instant, each with its own
    idempotency key; their status codes."""
    start = threading.Barrier(count)
    answers: list[int] = []

    def submit() -> None:
        client = Client()
        client.force_login(user)
        data = generate_data(idempotency_key=str(uuid.uuid4()), **fields)
        start.wait(timeout=10)
        answers.append(client.post(reverse("generate"), data).status_code)

    threads = [threading.Thread(target=submit) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


@pytest.mark.django_db(transaction=True)
def test_it_lets_one_of_ten_parallel_submits_past_a_cap_of_one(owner, clip, settings):
    settings.MAX_INFLIGHT_RUNS_PER_USER = 1
    reference = make_reference(owner, clip)

    answers = submit_in_parallel(owner, 10, reference=str(reference.code))

    assert Run.objects.count() == 1
    assert sorted(answers) == [200] * 9 + [302]  # nine re-rendered forms saying why


@pytest.mark.django_db(transaction=True)
def test_it_holds_the_budget_under_parallel_submits(owner, clip, settings):
    settings.MAX_INFLIGHT_RUNS_PER_USER = 0
    settings.MONTHLY_BUDGET_USD = "1.00"  # room for one 5 s run ($0.84), not two
    reference = make_reference(owner, clip)

    submit_in_parallel(owner, 6, reference=str(reference.code), duration=5)

    assert Run.objects.count() == 1


# --- the instance's budget --------------------------------------------------------------------


@pytest.mark.django_db
def test_it_refuses_a_run_the_instances_budget_cannot_pay_for(owner_client, owner, settings):
    settings.INSTANCE_MONTHLY_BUDGET_USD = "1.00"
    colleague = make_user("colleague")
    make_run(colleague, billed_cost_micros=840_000)  # another user spent most of it

    response = owner_client.post(
        reverse("generate"), generate_data(reference=str(make_reference(owner).code))
    )

    assert response.status_code == 200
    assert "only $0.160 of this instance's budget for the month is left" in text_of(response)
    assert not Run.objects.filter(user=owner).exists()


# --- simulated costs ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_it_labels_simulated_costs_and_keeps_them_out_of_real_totals(owner_client, owner, clip):
    simulated = make_run(owner, clip, simulated=True)
    real = make_run(owner, clip, simulated=False, billed_cost_micros=840_000, duration=5)

    page = text_of(owner_client.get(simulated.get_absolute_url()))
    assert "would bill $0.504" in page
    assert "Billed $0.504" not in " ".join(page.split())
    real_page = " ".join(text_of(owner_client.get(real.get_absolute_url())).split())
    assert "Billed $0.840" in real_page and "would bill" not in real_page

    history = owner_client.get(reverse("history")).content.decode()
    assert re.search(r'id="total-billed">\$0\.840<', history)  # real money only
    assert re.search(r'id="simulated-total">\$0\.504<', history)
    assert "would bill $0.504" in html.unescape(history)


@pytest.mark.django_db
def test_it_counts_only_runs_of_this_gateway_against_a_budget(owner_client, owner, settings):
    settings.MONTHLY_BUDGET_USD = "1.00"
    make_run(owner, simulated=False, billed_cost_micros=900_000)  # from when a key was set

    page = text_of(owner_client.get(reverse("generate")))

    assert "Budget left this month: $1.000" in page


# --- a submit whose fate is unknown -----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_it_says_billing_is_unknown_when_a_resubmit_is_refused(
    gateway, owner_client, owner, clip, settings
):
    """The worker died mid-submit (the run stayed `submitting`), and the resubmit gets 402:
    the first attempt may have made a job, so this is not "$0, nothing was sent"."""
    settings.AIGATEWAY_WEBHOOK_SECRET = ""
    run = make_run(owner, clip, status="submitting", billed_cost_micros=None)
    Run.objects.filter(pk=run.pk).update(next_poll_at=run.created_at)
    store.add_fault(on="submit", status=402)

    track_until_idle(timeout=30)

    run.refresh_from_db()
    assert run.status == "failed"
    assert run.billing_unknown and run.billed_cost_micros is None
    assert "A job may exist at the provider" in run.error_message
    page = " ".join(text_of(owner_client.get(run.get_absolute_url())).split())
    assert "whether it was billed is unknown" in page
    assert "unknown — the provider may bill it" in page
    history = " ".join(text_of(owner_client.get(reverse("history"))).split())
    assert "unknown — the provider may bill it" in history


@pytest.mark.django_db(transaction=True)
def test_a_resubmit_unanswered_past_the_deadline_ends_saying_billing_is_unknown(
    gateway, owner, clip, settings
):
    """The worker died mid-submit and the gateway has answered only 503 since: the run
    keeps retrying with its key until the deadline, then stops counting as in flight."""
    settings.AIGATEWAY_WEBHOOK_SECRET = ""
    run = make_run(owner, clip, status="submitting", billed_cost_micros=None)
    asked = timezone.now() - timedelta(minutes=settings.RUN_DEADLINE_MINUTES + 1)
    Run.objects.filter(pk=run.pk).update(
        submitted_at=None, created_at=asked, next_poll_at=timezone.now()
    )
    store.add_fault(on="submit", status=503, times=50)

    track_until_idle(timeout=30)

    run.refresh_from_db()
    assert run.status == "failed" and run.error_code == "submit_uncertain"
    assert run.billing_unknown and run.billed_cost_micros is None
    assert "answered only with errors to retry" in run.error_message
    assert not Run.objects.in_flight().exists()


@pytest.mark.django_db(transaction=True)
def test_it_bills_nothing_when_a_first_submit_is_refused(gateway, owner, clip, settings):
    settings.AIGATEWAY_WEBHOOK_SECRET = ""
    run = make_run(owner, clip, status="pending", billed_cost_micros=None)
    Run.objects.filter(pk=run.pk).update(next_poll_at=run.created_at)
    store.add_fault(on="submit", status=402)

    track_until_idle(timeout=30)

    run.refresh_from_db()
    assert run.status == "failed" and run.billed_cost_micros == 0 and not run.billing_unknown


@pytest.mark.django_db
def test_it_keeps_a_deleted_runs_cost_in_the_budget_and_the_totals(owner_client, owner, clip):
    """Deleting a billed run removes it from view, not from the money: otherwise deleting
    would hand its cost back to the budget, again and again."""
    run = make_run(owner, clip, duration=5, billed_cost_micros=840_000)
    with override_settings(MONTHLY_BUDGET_USD="1.00"):
        assert owner_client.post(reverse("run_delete", args=[run.code])).status_code == 302
        page = text_of(owner_client.get(reverse("generate")))
        assert "Budget left this month: $0.160" in page
        refused = owner_client.post(
            reverse("generate"),
            generate_data(reference=str(make_reference(owner).code), duration=5),
        )
        assert "only $0.160 of this month's budget is left" in text_of(refused)
    history = owner_client.get(reverse("history")).content.decode()
    assert run.get_absolute_url() not in history
    assert re.search(r'id="simulated-total">\$0\.840<', history)
    assert owner_client.get(run.get_absolute_url()).status_code == 404
    deleted = Run.objects.get(pk=run.pk)
    assert deleted.prompt == "" and deleted.reference is None and not deleted.result


@pytest.mark.django_db
def test_it_refuses_a_run_while_the_users_files_are_over_their_quota(
    owner_client, owner, clip, settings
):
    settings.USER_STORAGE_QUOTA_MB = 1
    reference = make_reference(owner, clip, size=2 * 1024 * 1024)  # over the quota already

    response = owner_client.post(reverse("generate"), generate_data(reference=str(reference.code)))

    assert response.status_code == 200
    assert "of your 1 MB storage quota" in text_of(response)
    assert not Run.objects.exists()


@pytest.mark.parametrize("kind", ["problems", "image"])
def test_it_never_sends_a_reference_the_model_would_refuse(owner, kind):
    """However such a run came to be, the submit step refuses it at $0 without a call."""
    fields = (
        {"problems": "It is 14 s long; the model takes 3–10 s."}
        if kind == "problems"
        else {"kind": "image"}
    )
    reference = make_reference(owner, **fields)
    run = make_run(owner, status="pending", reference=reference)
    provider = ScriptedProvider({})
    steps.submit(run, provider.gateway())
    run.refresh_from_db()
    assert provider.calls == []
    assert run.status == "failed" and run.billed_cost_micros == 0
    assert "not a video the model takes" in run.error_message

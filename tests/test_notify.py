"""The in-flight read behind the tab title's count and the done notification."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from playground.runs.models import Run
from playground.runs.views.runs import IN_FLIGHT_LIMIT
from tests.builders import make_reference, make_run, make_runs

pytestmark = pytest.mark.django_db


def in_flight(client: Client) -> dict[str, str]:
    response = client.get(reverse("runs_in_flight"))
    assert response.status_code == 200
    assert "no-cache" in response["Cache-Control"]
    return {row["url"]: row["status"] for row in response.json()["runs"]}


def test_it_lists_the_owners_live_and_lately_finished_runs(owner, stranger, owner_client) -> None:
    reference = make_reference(owner)
    queued, processing, fresh, _old, deleted = make_runs(
        owner, reference, "queued", "processing", "completed", "failed", "completed"
    )
    Run.objects.filter(pk=_old.pk).update(finished_at=timezone.now() - timedelta(hours=1))
    assert deleted.discard()
    make_run(stranger, status="queued")

    assert in_flight(owner_client) == {
        queued.get_absolute_url(): "queued",
        processing.get_absolute_url(): "processing",
        fresh.get_absolute_url(): "completed",
    }


def test_the_body_names_it_for_a_signed_in_user_only(owner_client, client) -> None:
    url = reverse("runs_in_flight")
    assert f'data-in-flight-url="{url}"' in owner_client.get(reverse("history")).text
    page = client.get(reverse("login"))
    assert page.status_code == 200
    assert "data-in-flight-url" not in page.text
    assert client.get(url).status_code == 302  # to the log-in page, nothing listed


def test_live_runs_come_first_however_many_finished_lately(owner, owner_client, settings):
    reference = make_reference(owner)
    old_live = make_run(owner, status="processing", reference=reference)
    Run.objects.filter(pk=old_live.pk).update(created_at=timezone.now() - timedelta(hours=3))
    make_runs(owner, reference, *["completed"] * (IN_FLIGHT_LIMIT + 5))
    listed = in_flight(owner_client)
    assert listed[old_live.get_absolute_url()] == "processing"
    assert list(listed.values()).count("completed") == IN_FLIGHT_LIMIT

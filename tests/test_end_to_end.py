"""A run from the form to the player, through the real client and the real simulator."""

from __future__ import annotations

import pytest
from django.urls import reverse

from playground.lib import media, video
from playground.runs.models import Run
from playground.runs.tracker import track_until_idle
from playground.simulator import store
from tests.builders import generate_data

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_generates_tracks_and_plays_a_run(gateway, owner_client, good_video):
    response = owner_client.post(reverse("generate"), generate_data(good_video, keep_audio="on"))
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == run.get_absolute_url()
    assert run.status == "pending"
    assert run.estimated_cost_micros == 3 * 168_000

    page = owner_client.get(run.get_absolute_url())
    assert b'hx-trigger="every 2s [document.visibilityState' in page.content

    track_until_idle(timeout=60)
    run.refresh_from_db()
    assert run.status == "completed", run.error_message
    assert run.provider_job_id.startswith("job_")
    assert run.billed_cost_micros == 3 * 168_000
    assert store.job_ids() == [run.provider_job_id]  # one job, submitted once

    with media.local_copy(run.result.name) as path:
        facts = video.probe(path)
    assert facts.codec == "h264" and facts.has_audio
    assert abs(facts.duration - 3) < 0.2
    poll = owner_client.get(reverse("run_status", args=[run.code]), headers={"HX-Request": "true"})
    assert poll.status_code == 286
    assert b"<video" in poll.content and b"hx-trigger" not in poll.content

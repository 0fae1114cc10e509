"""The tracker's guarantees where the provider misbehaves in ways the simulator can't show:
a claim outlives slow steps, the deadline never throws away a billed job, and a result
our own probe can't read is not downloaded again and again."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import httpx
import pytest
from django.utils import timezone

from playground.gateway import GatewayError
from playground.lib import video
from playground.runs import steps
from playground.runs.models import Run
from playground.runs.tracker import Loop, run_loop
from tests.builders import ScriptedProvider, make_run, stored_bytes

pytestmark = pytest.mark.django_db(transaction=True)

PRICE = 168_000
JOB = "job_abc123"
JOB_PATH = f"/v1/jobs/{JOB}"
RESULT = "https://cdn.test/out.mp4"


def completed(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200, json={"id": JOB, "status": "completed", "result": {"url": RESULT, "duration": 3.0}}
    )


def live_run(owner, clip, **fields) -> Run:
    values = {"status": "processing", "provider_job_id": JOB, "next_poll_at": timezone.now()}
    return make_run(owner, clip, **{**values, **fields})


def advance_until_final(run: Run, provider: ScriptedProvider, turns: int = 5) -> Run:
    gateway = provider.gateway()
    for _ in range(turns):
        run.refresh_from_db()
        if run.is_final:
            break
        steps.advance(run, gateway)
    run.refresh_from_db()
    return run


# --- the claim ------------------------------------------------------------------------------


def test_it_keeps_its_claim_while_a_step_outlasts_it(owner, clip, settings, monkeypatch):
    """A poll still waits on the provider long after the claim's lease: the claim must be
    renewed while it waits, so no other worker's tracker takes the same run."""
    settings.TRACKER_LEASE_SECONDS = 1
    settings.TRACKER_THREADS = 1
    run = live_run(owner, clip)
    polls = []
    answered = threading.Event()

    def slow_poll(request: httpx.Request) -> httpx.Response:
        polls.append(time.monotonic())
        time.sleep(3)  # three leases long
        answered.set()
        return httpx.Response(200, json={"id": JOB, "status": "processing"})

    provider = ScriptedProvider({("GET", JOB_PATH): slow_poll})
    monkeypatch.setattr("playground.runs.tracker.gateway_from_settings", provider.gateway)
    first = Loop()
    loop = threading.Thread(
        target=run_loop, args=(first,), kwargs={"until": time.monotonic() + 0.3}
    )
    loop.start()
    deadline = time.monotonic() + 5
    while not polls and time.monotonic() < deadline:  # the first tracker's poll is out
        time.sleep(0.01)
    taken_by_second = []
    while loop.is_alive() and not answered.is_set():
        # Due again by its schedule (a poll interval is long gone): only the claim holds it.
        Run.objects.filter(pk=run.pk).update(next_poll_at=timezone.now())
        taken = Run.claim_due(10, "second-worker")
        if taken and not answered.is_set():  # taken while the first step still ran
            taken_by_second += taken
        time.sleep(0.1)
    loop.join()

    assert len(polls) == 1
    assert taken_by_second == [], "another tracker took the run while its step ran"
    run.refresh_from_db()
    assert run.status == "processing" and run.provider_requests == 1
    assert run.claimed_by == "" and run.claimed_until is None  # handed back when done


def test_it_gives_every_download_attempt_a_file_of_its_own(tmp_path):
    """Two downloads of one result at once (two trackers, or a retry overlapping a slow
    one) never write into the same temporary file."""
    started = threading.Barrier(2)
    seen: set[str] = set()

    def slow_file(request: httpx.Request) -> httpx.Response:
        started.wait(timeout=5)
        seen.update(p.name for p in tmp_path.glob("*.part"))
        return httpx.Response(200, content=b"x" * 1000)

    gateway = ScriptedProvider({("GET", "cdn.test"): slow_file}).gateway()
    dest = tmp_path / "result.mp4"
    threads = [threading.Thread(target=gateway.download, args=(RESULT, dest)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert dest.read_bytes() == b"x" * 1000
    assert not list(tmp_path.glob("*.part"))
    assert all(name.startswith("result.mp4.") for name in seen)


# --- the deadline ---------------------------------------------------------------------------


@pytest.fixture
def past_deadline(owner, clip, settings) -> Run:
    settings.RUN_DEADLINE_MINUTES = 20
    return live_run(owner, clip, submitted_at=timezone.now() - timedelta(minutes=21))


def test_it_fetches_and_bills_a_job_that_finished_as_the_deadline_passed(past_deadline, clip):
    finished = httpx.Response(
        409, json={"error": {"message": "The job has already finished.", "code": "job_finished"}}
    )
    provider = ScriptedProvider(
        {
            ("POST", f"{JOB_PATH}/cancel"): finished,
            ("GET", JOB_PATH): completed,
            ("GET", "cdn.test"): httpx.Response(200, content=clip[0].read_bytes()),
        }
    )

    run = advance_until_final(past_deadline, provider)

    assert run.status == "completed", (run.status, run.error_message)
    assert run.billed_cost_micros == 3 * PRICE and run.cost_source == "computed"
    assert stored_bytes(run.result.name) == clip[0].read_bytes()


def test_it_keeps_trying_to_cancel_after_the_deadline_when_the_gateway_is_down(past_deadline):
    busy = httpx.Response(503, json={"error": {"message": "Busy.", "type": "server_error"}})
    provider = ScriptedProvider(
        {
            ("POST", f"{JOB_PATH}/cancel"): busy,
            ("GET", JOB_PATH): httpx.Response(200, json={"id": JOB, "status": "processing"}),
        }
    )
    steps.advance(past_deadline, provider.gateway())
    past_deadline.refresh_from_db()
    assert past_deadline.status == "processing"  # not "timed out at $0" while it may run on
    assert "cancelling it at the provider failed" in past_deadline.notice

    Run.objects.filter(pk=past_deadline.pk).update(
        submitted_at=timezone.now() - timedelta(minutes=20 + steps.CANCEL_GRACE_MINUTES + 1)
    )
    run = advance_until_final(past_deadline, provider)
    assert run.status == "timed_out"
    assert run.billing_unknown and run.billed_cost_micros is None
    assert "unknown" in run.error_message


def test_it_times_out_a_processing_job_with_its_billing_unknown(past_deadline):
    """The job had started, so the provider may bill it: not "$0", and the budget counts
    the estimate."""
    provider = ScriptedProvider(
        {
            ("POST", f"{JOB_PATH}/cancel"): httpx.Response(
                200, json={"id": JOB, "status": "cancelled"}
            )
        }
    )
    run = advance_until_final(past_deadline, provider)
    assert run.status == "timed_out"
    assert run.billing_unknown and run.billed_cost_micros is None
    assert provider.count("POST", f"{JOB_PATH}/cancel") == 1


# --- our own steps failing on a billed result -------------------------------------------------


def test_it_fails_once_on_a_result_that_is_no_video_and_never_downloads_it_again(owner, clip):
    provider = ScriptedProvider(
        {("GET", JOB_PATH): completed, ("GET", "cdn.test"): httpx.Response(200, content=b"<html>")}
    )
    run = advance_until_final(live_run(owner, clip), provider, turns=10)

    assert run.status == "failed" and run.error_code == "result_unreadable"
    assert run.billed_cost_micros == 3 * PRICE  # the provider billed it all the same
    assert provider.count("GET", "/out.mp4") == 1


def test_it_completes_without_a_poster_when_the_poster_step_fails(owner, clip, monkeypatch):
    def broken_poster(*args: object, **kwargs: object) -> None:
        raise video.UnreadableVideo("no frame could be decoded for a poster")

    monkeypatch.setattr(video, "save_poster", broken_poster)
    provider = ScriptedProvider(
        {
            ("GET", JOB_PATH): completed,
            ("GET", "cdn.test"): httpx.Response(200, content=clip[0].read_bytes()),
        }
    )
    run = advance_until_final(live_run(owner, clip), provider, turns=10)

    assert run.status == "completed" and run.result and not run.poster
    assert provider.count("GET", "/out.mp4") == 1


def test_it_gives_up_on_a_run_whose_cancel_keeps_failing_at_the_deadline(past_deadline):
    """A cancel the gateway keeps refusing can't keep a run alive past its deadline: the
    deadline's own path takes over, and a job that completed meanwhile is fetched."""
    Run.objects.filter(pk=past_deadline.pk).update(cancel_requested=True)
    refused = httpx.Response(400, json={"error": {"message": "No.", "type": "invalid_request"}})
    provider = ScriptedProvider(
        {
            ("POST", f"{JOB_PATH}/cancel"): refused,
            ("GET", JOB_PATH): completed,
            ("GET", "cdn.test"): httpx.Response(200, content=b"<html>"),
        }
    )
    run = advance_until_final(past_deadline, provider)
    assert run.status == "failed" and run.error_code == "result_unreadable"
    assert run.billed_cost_micros == 3 * PRICE
    assert provider.count("GET", JOB_PATH) >= 1


def test_it_asks_the_job_when_a_cancel_is_refused(owner, clip):
    """Cancel refused (not 404/409, not transient): the job's own word decides."""
    run = live_run(owner, clip, cancel_requested=True, submitted_at=timezone.now())
    refused = httpx.Response(400, json={"error": {"message": "No.", "type": "invalid_request"}})
    provider = ScriptedProvider(
        {
            ("POST", f"{JOB_PATH}/cancel"): refused,
            ("GET", JOB_PATH): completed,
            ("GET", "cdn.test"): httpx.Response(200, content=b"<html>"),
        }
    )
    steps.advance(run, provider.gateway())
    run.refresh_from_db()
    assert run.status == "failed" and run.billed_cost_micros == 3 * PRICE  # billed, not $0


def test_it_refuses_a_result_download_past_any_real_size(tmp_path, monkeypatch):
    monkeypatch.setattr("playground.gateway.client.MAX_RESULT_BYTES", 3 << 20)
    endless = httpx.Response(200, content=b"x" * (5 << 20))
    gateway = ScriptedProvider({("GET", "cdn.test"): endless}).gateway()
    with pytest.raises(GatewayError) as caught:
        gateway.download(RESULT, tmp_path / "out.mp4")
    assert caught.value.code == "result_too_large" and not caught.value.retryable
    assert list(tmp_path.iterdir()) == []


def test_it_waits_when_our_store_refuses_the_result_instead_of_downloading_it_again(
    owner, clip, monkeypatch
):
    """The bucket is down (or the disk full) when a result comes in: the run says so and
    waits, rather than downloading the billed result again every few seconds."""
    run = live_run(owner, clip, status="fetching", result_url=RESULT)
    downloads = []

    def result(request: httpx.Request) -> httpx.Response:
        downloads.append(request)
        return httpx.Response(200, content=clip[0].read_bytes())

    def refuse(name: str, path: object) -> str:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("playground.lib.media.save", refuse)
    steps.advance(run, ScriptedProvider({("GET", "cdn.test"): result}).gateway())

    run.refresh_from_db()
    assert run.status == "fetching" and "could not be saved" in run.notice
    assert (run.next_poll_at - timezone.now()).total_seconds() > steps.STORE_RETRY_SECONDS - 5
    assert len(downloads) == 1

"""A qcluster killed with SIGKILL at each risky point loses nothing and pays once.

Each test starts the real web server and a real qcluster, holds the run at one point with
a simulator delay, kills the whole cluster there, starts a new one, and checks that the
run completes with exactly one provider job and its cost recorded once.
"""

from __future__ import annotations

import pytest

from tests.stack import Stack, wait_for

pytestmark = pytest.mark.stack

PRICE = 168_000


@pytest.fixture
def stack(tmp_path):
    stack = Stack(tmp_path).start()
    yield stack
    stack.stop()


def status(stack: Stack, code: str) -> str:
    return stack.run(code)["status"]


def finish_after_restart(stack: Stack, code: str) -> None:
    stack.start_worker()
    wait_for(lambda: status(stack, code) in {"completed", "failed"}, timeout=60)
    run = stack.run(code)
    assert run["status"] == "completed", run["error_message"]
    assert len(stack.simulator_jobs()) == 1, "a paid job was submitted twice"
    assert run["provider_job_id"] == stack.simulator_jobs()[0]
    assert run["billed_cost_micros"] == 3 * PRICE
    assert run["estimated_cost_micros"] == 3 * PRICE


@pytest.mark.parametrize(
    ("fault", "held_in"),
    [
        # Killed while the submit request is in flight, before the provider made the job.
        ({"on": "submit", "delay": 4}, "submitting"),
        # The provider accepted the job but we never got its id: the idempotency key
        # makes the resubmission after restart return that same job.
        ({"on": "submit", "delay_after": 4}, "submitting"),
        # Killed while the result is being copied into our storage.
        ({"on": "download", "delay": 4}, "fetching"),
    ],
    ids=["before-provider-accepts", "after-provider-accepts", "while-copying-result"],
)
def test_it_survives_sigkill(stack, good_video, fault, held_in):
    client = stack.user_client()
    stack.add_fault(**fault)
    code = stack.generate(client, good_video)
    wait_for(lambda: status(stack, code) == held_in, timeout=30)
    if fault.get("delay_after"):
        wait_for(lambda: len(stack.simulator_jobs()) == 1, timeout=10)
    stack.kill_worker()
    assert status(stack, code) == held_in
    finish_after_restart(stack, code)


def test_it_survives_sigkill_while_tracking(stack, good_video):
    client = stack.user_client()
    # Long enough that the first poll (the 10 s webhook fallback) still finds it running.
    stack.add_fault(on="job", slow=20)
    code = stack.generate(client, good_video)
    wait_for(lambda: status(stack, code) == "processing", timeout=30)
    stack.kill_worker()
    finish_after_restart(stack, code)


def test_it_submits_runs_created_while_no_worker_ran(stack, good_video):
    stack.kill_worker()
    client = stack.user_client()
    code = stack.generate(client, good_video)
    assert status(stack, code) == "pending"
    finish_after_restart(stack, code)

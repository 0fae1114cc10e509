"""The benchmark scripts still run: the README's figures come from them, and nothing else
imports them, so a change elsewhere can break one unseen (bench/page_weight.py did, still
importing a helper that had been removed; bench/history.py and bench/poll.py needed the
static files a `make run` leaves behind, and failed in a fresh clone). Each is started as
the README says; the quick ones run whole or at a tiny size, the others only as far as
their arguments (which is past every import). No figure is checked: speed is the
scripts' job, not the tests'."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = sorted(path.name for path in (ROOT / "bench").glob("*.py"))
# Run whole, or at a tiny size; the others (real processes, minutes) only to their
# arguments.
RUN = {"poll.py", "page_weight.py", "history.py"}
STARTED_ONLY = sorted(set(BENCH) - RUN)

pytestmark = pytest.mark.bench


def bench(*args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.mark.parametrize("script", STARTED_ONLY)
def test_it_starts(script: str) -> None:
    assert "usage:" in bench(f"bench/{script}", "--help")


def test_page_weight_measures_every_page() -> None:
    table = bench("bench/page_weight.py", "--runs", "3")
    for page in ("Generate", "Run", "History", "Batch (4 runs)"):
        assert f"| {page} |" in table, table


def test_history_measures_every_request() -> None:
    table = bench("bench/history.py", "--runs", "40", "--rounds", "2")
    assert "| first page |" in table and "| page 200" in table, table


def test_poll_measures_every_speed_up() -> None:
    table = bench("bench/poll.py")  # about 16 s; it has no smaller size
    assert "session instead of key" in table, table

"""The simulator's state: plain files under SIMULATOR_ROOT, shared by every process.

Files rather than the app's database keep the simulator independent of the app (as a real
provider is) and let tests in other processes count the jobs it received.
"""

from __future__ import annotations

import fcntl
import json
import math
import os
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from django.conf import settings


def root() -> Path:
    path = Path(settings.SIMULATOR_ROOT)
    for sub in ("jobs", "inputs", "outputs", "idempotency", "active"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def locked(name: str) -> Iterator[None]:
    """A cross-process lock (flock) around read-modify-write of shared files."""
    with (root() / f".{name}.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


# A job due this long without its output is taken to have lost the process rendering it.
RENDER_GRACE_SECONDS = 20


@dataclass
class SimJob:
    id: str
    prompt: str
    duration: int
    aspect_ratio: str
    keep_audio: bool
    video_url: str
    webhook_url: str = ""
    created: float = field(default_factory=time.time)
    queued_seconds: float = 1.5
    processing_seconds: float = 4.0
    fail_message: str = ""
    hang: bool = False
    cancelled_at: float | None = None
    expired_urls_left: int = 0  # how many result URLs to hand out already expired
    fetch_error: str = ""
    webhook_sent: bool = False
    resolution: str = ""
    # SHA-256 of the reference it downloaded (the file itself is dropped once rendered).
    input_sha256: str = ""
    # The reference images (`image_urls`), @Image1 first, and the SHA-256 of each fetched.
    image_urls: list[str] = field(default_factory=list)
    image_sha256: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Where this job lives, fixed when it is made or loaded: a thread still working on
        # it after SIMULATOR_ROOT changes (as it does between tests) keeps to its own files.
        self.home = root()

    @property
    def input_path(self) -> Path:
        return self.home / "inputs" / f"{self.id}.mp4"

    def image_path(self, number: int) -> Path:
        """Where image `number` (1 for @Image1) is kept until the render is done."""
        return self.home / "inputs" / f"{self.id}-image{number}"

    @property
    def image_paths(self) -> list[Path]:
        return [self.image_path(n) for n in range(1, len(self.image_urls) + 1)]

    def drop_inputs(self) -> None:
        """The inputs were only needed for the render: keeping a copy per job would grow
        the simulator's folder by up to 240 MB a run."""
        for path in (self.input_path, *self.image_paths):
            path.unlink(missing_ok=True)

    @property
    def output_path(self) -> Path:
        return self.home / "outputs" / f"{self.id}.mp4"

    def save(self) -> None:
        _write_json(self.home / "jobs" / f"{self.id}.json", asdict(self))

    @classmethod
    def load(cls, job_id: str) -> SimJob | None:
        if not job_id.startswith("job_") or not job_id[4:].isalnum():
            return None
        try:
            return cls(**json.loads((root() / "jobs" / f"{job_id}.json").read_text()))
        except FileNotFoundError:
            return None

    @staticmethod
    def new_id() -> str:
        return f"job_{secrets.token_hex(10)}"

    @property
    def due_at(self) -> float:
        return self.created + self.queued_seconds + self.processing_seconds

    def phase(self, now: float | None = None) -> str:
        """Where the job is by the clock: queued, processing, or due to be done."""
        if self.cancelled_at is not None:
            return "cancelled"
        if self.fetch_error:
            return "failed"
        elapsed = (now or time.time()) - self.created
        if elapsed < self.queued_seconds:
            return "queued"
        if self.hang or elapsed < self.queued_seconds + self.processing_seconds:
            return "processing"
        return "failed" if self.fail_message else "done"

    def finished(self, now: float | None = None) -> bool:
        """Whether the job is over as a client sees it: completed (its output written),
        failed or cancelled. A job due to be done whose output is not written yet is
        still processing."""
        phase = self.phase(now)
        return phase in {"failed", "cancelled"} or (phase == "done" and self.output_path.exists())

    def output_lost(self, now: float | None = None) -> bool:
        """Due to be done long ago and still without output: whatever was rendering it
        has gone (the process restarted), so it must be started again."""
        now = now or time.time()
        return (
            self.phase(now) == "done"
            and now > self.due_at + RENDER_GRACE_SECONDS
            and not self.output_path.exists()
        )


# --- Unfinished jobs ----------------------------------------------------------------------
#
# active/<due>-<job id>: an empty file per job not known to be finished, named with the
# second the job is due. Counting them reads only the names; a job's own file is read once
# it is overdue, and its entry is removed when it has finished.

HANGING = 10**10  # the "due" second of a hanging job: never


def mark_active(job: SimJob) -> None:
    due = HANGING if job.hang else math.ceil(job.due_at)
    (root() / "active" / f"{due}-{job.id}").touch()


def mark_finished(job_id: str) -> None:
    for path in (root() / "active").glob(f"*-{job_id}"):
        path.unlink(missing_ok=True)


def active_job_count() -> int:
    """How many jobs are unfinished now (call it under locked("submit") to act on it)."""
    now = time.time()
    count = 0
    with os.scandir(root() / "active") as entries:
        for entry in entries:
            due, _, job_id = entry.name.partition("-")
            # The name's due time is rounded up: within its last second the job may be done
            # already, so only a due time past that is taken on trust.
            if due.isdigit() and int(due) > now + 1:
                count += 1
                continue
            job = SimJob.load(job_id)
            if job is None or job.finished(now):
                Path(entry.path).unlink(missing_ok=True)
            else:
                count += 1
    return count


def job_ids() -> list[str]:
    return sorted(p.stem for p in (root() / "jobs").glob("job_*.json"))


def job_for_idempotency_key(key: str) -> str | None:
    path = root() / "idempotency" / _safe(key)
    return path.read_text() if path.exists() else None


def remember_idempotency_key(key: str, job_id: str) -> None:
    (root() / "idempotency" / _safe(key)).write_text(job_id)


def _safe(key: str) -> str:
    return "".join(ch for ch in key if ch.isalnum() or ch in "-_")[:128] or "blank"


# --- Fault knobs ------------------------------------------------------------------------
#
# A queue of faults in faults.json, consumed in order by the requests they match:
#   {"on": "submit" | "poll" | "cancel" | "download" | "any",
#    "status": 429, "retry_after": 1, "message": "…",     # an HTTP error answer
#    "status": 304,                           # poll only: an empty `304 Not Modified`
#    "malformed": true,                                     # a 200 with a broken body
#    "delay": 2.5,                                          # answer late (timeouts)
#    "delay_after": 4,                  # submit only: create the job, then answer late
#    "times": 1}
# and {"on": "job", "fail": "message", "hang": true, "slow": 30, "expired_urls": 1}
# which shapes the next submitted job.


def add_fault(**fault: Any) -> None:
    fault.setdefault("times", 1)
    with locked("faults"):
        faults = _read_faults()
        faults.append(fault)
        _write_json(root() / "faults.json", faults)


def clear_faults() -> None:
    with locked("faults"):
        _write_json(root() / "faults.json", [])


def take_fault(route: str) -> dict[str, Any] | None:
    """Consume the first queued fault that applies to this route, if any."""
    path = root() / "faults.json"
    if not path.exists():
        return None
    with locked("faults"):
        faults = _read_faults()
        for fault in faults:
            if fault.get("on") == route or (fault.get("on") == "any" and route != "job"):
                fault["times"] -= 1
                if fault["times"] <= 0:
                    faults.remove(fault)
                _write_json(path, faults)
                return fault
    return None


def _read_faults() -> list[dict[str, Any]]:
    try:
        return json.loads((root() / "faults.json").read_text())
    except (FileNotFoundError, ValueError):
        return []

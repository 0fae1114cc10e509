"""The simulator's worker side: fetch the references, render the output, call webhooks.

Work runs on small thread pools inside whichever process serves the simulator, and every
timed call (a webhook when its job is due, a retry) waits on one scheduler thread, so the
threads it uses stay few whatever the number of jobs. If that process restarts mid-render,
the next poll that finds a due job without output starts the work again, so no job is stuck.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
import itertools
import json
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings

from playground import kling
from playground.lib.media import size_label
from playground.simulator import render, store
from playground.simulator.contract import job_body

log = logging.getLogger(__name__)

# Fetching and copying are I/O; rendering is CPU, so at most two renders run at once.
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="simulator")
_render_slots = threading.BoundedSemaphore(2)
# Identical renders wait for the first rather than repeat it (striped: a bounded set).
_render_locks = [threading.Lock() for _ in range(64)]
_lock = threading.Lock()
_in_flight: set[str] = set()

# Fetching the reference: like a provider, but only what the submit allowed, and bounded.
FETCH_TIMEOUT = httpx.Timeout(30.0, connect=10.0)
FETCH_SECONDS = 120  # the whole download, however slowly the bytes come


def start(job_id: str) -> None:
    """Make sure this job's output is being produced (at most once per process)."""
    with _lock:
        if job_id in _in_flight:
            return
        _in_flight.add(job_id)
    _pool.submit(_produce, job_id)


def _produce(job_id: str) -> None:
    try:
        job = store.SimJob.load(job_id)
        if job is None or job.output_path.exists() or job.fetch_error:
            return
        if error := _fetch_inputs(job):
            job.fetch_error = error
            job.save()
            job.drop_inputs()
            return
        _render_cached(job)
    except render.UnreadableImage as exc:  # what the model would refuse, in its words
        failed = store.SimJob.load(job_id)  # as recorded since (what it fetched)
        if failed is not None:
            failed.drop_inputs()
            failed.fail_message = str(exc)
            failed.save()
    except Exception:
        log.exception("simulator: producing %s failed", job_id)
        job = store.SimJob.load(job_id)
        if job is not None and not job.output_path.exists():
            job.fail_message = job.fail_message or "The simulator could not render this video."
            job.save()
    finally:
        with _lock:
            _in_flight.discard(job_id)


def _fetch_inputs(job: store.SimJob) -> str:
    """The reference video, then each image, unless already here; an error message or ''."""
    if not job.input_path.exists() and (error := fetch_reference(job.video_url, job.input_path)):
        return error
    for number, (url, path) in enumerate(zip(job.image_urls, job.image_paths, strict=True), 1):
        if not path.exists() and (
            error := fetch_reference(
                url, path, limit=kling.IMAGE_MAX_BYTES, what=f"reference image {number}"
            )
        ):
            return error
    return ""


def fetch_reference(
    url: str, dest: Path, *, limit: int | None = None, what: str = "the reference video"
) -> str:
    """Download a reference like a provider would; return an error message or ''.

    No redirects (the submit checked this URL, not wherever it might point), a timeout,
    and no more than the model's size limit is read (the video's, unless `limit` says).
    """
    part = dest.with_name(f"{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
    limit = kling.REFERENCE_MAX_BYTES if limit is None else limit
    too_big = (
        f"{what[0].upper()}{what[1:]} is larger than {size_label(limit)}, the model's limit; "
        "it was not downloaded."
    )
    deadline = time.monotonic() + FETCH_SECONDS
    try:
        with httpx.stream("GET", url, timeout=FETCH_TIMEOUT, follow_redirects=False) as response:
            if response.status_code != 200:
                return f"Could not download {what} (HTTP {response.status_code})."
            declared = response.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > limit:
                return too_big
            size = 0
            with part.open("wb") as fh:
                for chunk in response.iter_bytes():  # as it comes, so the clock is checked
                    size += len(chunk)
                    if size > limit:
                        return too_big
                    if time.monotonic() > deadline:
                        return f"Downloading {what} took over {FETCH_SECONDS} s."
                    fh.write(chunk)
        part.replace(dest)
    except httpx.HTTPError as exc:
        return f"Could not download {what} ({exc.__class__.__name__})."
    finally:
        part.unlink(missing_ok=True)
    return ""


def _render_cached(job: store.SimJob) -> None:
    """Identical requests share one render (the benchmark submits a thousand of them)."""
    received = _sha256(job.input_path)
    images = [_sha256(path) for path in job.image_paths]
    with store.locked("jobs"):  # what it got stays on record (for tests, and to compare)
        fresh = store.SimJob.load(job.id) or job
        fresh.input_sha256 = received
        fresh.image_sha256 = images
        fresh.save()
    grade, _, _ = render.grade_for(job.prompt)
    request = "|".join(
        [received, grade, str(job.duration), job.aspect_ratio, str(job.keep_audio), *images]
    )
    key = hashlib.sha256(request.encode()).hexdigest()[:32]
    cache = job.home / "outputs" / f"cache-{key}.mp4"
    with _render_locks[int(key, 16) % len(_render_locks)]:
        if not cache.exists():
            with _render_slots:
                render.render(
                    job.input_path,
                    cache,
                    prompt=job.prompt,
                    duration=job.duration,
                    aspect_ratio=job.aspect_ratio,
                    keep_audio=job.keep_audio,
                    images=job.image_paths,
                )
    part = job.output_path.with_name(f"{job.id}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        os.link(cache, part)  # one copy on disk however many jobs share the render
    except OSError:
        shutil.copyfile(cache, part)
    part.replace(job.output_path)
    job.drop_inputs()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# --- Timed calls ----------------------------------------------------------------------------


class _Scheduler:
    """One thread that hands each call to a pool when its time comes (a timer thread per
    call would grow with the number of jobs)."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self._pool = pool
        self._due: list[tuple[float, int, Callable[..., Any], tuple[Any, ...]]] = []
        self._order = itertools.count()  # ties go in the order they were asked
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, fn: Callable[..., Any], *args: Any) -> None:
        with self._changed:
            heapq.heappush(self._due, (time.time() + delay, next(self._order), fn, args))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="simulator-scheduler", daemon=True
                )
                self._thread.start()
            self._changed.notify()

    def pending(self) -> int:
        with self._changed:
            return len(self._due)

    def _run(self) -> None:
        while True:
            with self._changed:
                while not self._due or self._due[0][0] > time.time():
                    self._changed.wait(self._due[0][0] - time.time() if self._due else None)
                _, _, fn, args = heapq.heappop(self._due)
            try:
                self._pool.submit(_logging_errors, fn, *args)
            except RuntimeError:
                return  # the interpreter is shutting down


def _logging_errors(fn: Callable[..., Any], *args: Any) -> None:
    """A pool keeps a call's exception in its future, which nobody reads: log it."""
    try:
        fn(*args)
    except Exception:
        log.exception("simulator: %s%r failed", fn.__name__, args)


# Webhook deliveries have a pool of their own, so a slow receiver never holds up renders.
# Enough to deliver a thousand jobs finishing together within a second or two (a real
# gateway delivers from its own machines), still a fixed number whatever the load.
_webhook_pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="simulator-webhook")
_scheduler = _Scheduler(_webhook_pool)


# --- Webhooks -------------------------------------------------------------------------------


def schedule_webhook(job: store.SimJob) -> None:
    """Call the job's webhook_url once it is due to finish (polling remains the fallback)."""
    if not job.webhook_url:
        return
    _scheduler.call_later(max(0.0, job.due_at - time.time()), _deliver_webhook, job.id, 0)


def _deliver_webhook(job_id: str, attempt: int) -> None:
    job = store.SimJob.load(job_id)
    if job is None or job.webhook_sent or not job.webhook_url:
        return
    phase = job.phase()
    if phase in {"queued", "processing"} or (phase == "done" and not job.output_path.exists()):
        if attempt < 60:
            _scheduler.call_later(1.0, _deliver_webhook, job_id, attempt + 1)
        return
    body = json.dumps(job_body(job, base_url=settings.AIGATEWAY_BASE_URL)).encode()
    timestamp = str(int(time.time()))
    signature = sign_webhook(timestamp, body)
    try:
        response = httpx.post(
            job.webhook_url,
            content=body,
            timeout=10,
            follow_redirects=False,
            headers={
                "Content-Type": "application/json",
                "aig-timestamp": timestamp,
                "aig-signature": signature,
            },
        )
        ok = response.is_success
    except httpx.HTTPError:
        ok = False
    if ok:
        job.webhook_sent = True
        job.save()
    elif attempt < 5:
        _scheduler.call_later(2.0 * (attempt + 1), _deliver_webhook, job_id, attempt + 1)


def sign_webhook(timestamp: str, body: bytes) -> str:
    secret = settings.AIGATEWAY_WEBHOOK_SECRET.encode()
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()

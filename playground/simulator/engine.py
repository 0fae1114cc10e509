"""The simulator's worker side: fetch the reference, render the output, call webhooks.

Work runs on a small thread pool inside whichever process serves the simulator. If that
process restarts mid-render, the next poll that finds a due job without output starts the
work again, so no job is stuck.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from django.conf import settings

from playground.simulator import render, store

log = logging.getLogger(__name__)

# Fetching and copying are I/O; rendering is CPU, so at most two renders run at once.
_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="simulator")
_render_slots = threading.BoundedSemaphore(2)
_lock = threading.Lock()
_in_flight: set[str] = set()


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
        if not job.input_path.exists():
            error = _fetch(job.video_url, job.input_path)
            if error:
                job.fetch_error = error
                job.save()
                return
        _render_cached(job)
    except Exception:
        log.exception("simulator: producing %s failed", job_id)
        job = store.SimJob.load(job_id)
        if job is not None and not job.output_path.exists():
            job.fail_message = job.fail_message or "The simulator could not render this video."
            job.save()
    finally:
        with _lock:
            _in_flight.discard(job_id)


def _fetch(url: str, dest: Path) -> str:
    """Download the reference like a provider would; return an error message or ''."""
    part = dest.with_name(f"{dest.name}.{os.getpid()}.{threading.get_ident()}.part")
    try:
        with httpx.stream("GET", url, timeout=60, follow_redirects=True) as response:
            if response.status_code != 200:
                return f"Could not download the reference video (HTTP {response.status_code})."
            with part.open("wb") as fh:
                for chunk in response.iter_bytes(1 << 20):
                    fh.write(chunk)
    except httpx.HTTPError as exc:
        return f"Could not download the reference video ({exc.__class__.__name__})."
    part.replace(dest)
    return ""


def _render_cached(job: store.SimJob) -> None:
    """Identical requests share one render (the benchmark submits a thousand of them)."""
    digest = hashlib.sha256()
    with job.input_path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    grade, _, _ = render.grade_for(job.prompt)
    digest.update(f"{grade}|{job.duration}|{job.aspect_ratio}|{job.keep_audio}".encode())
    cache = store.root() / "outputs" / f"cache-{digest.hexdigest()[:32]}.mp4"
    if not cache.exists():
        render.render(
            job.input_path,
            cache,
            prompt=job.prompt,
            duration=job.duration,
            aspect_ratio=job.aspect_ratio,
            keep_audio=job.keep_audio,
        )
    part = job.output_path.with_name(f"{job.id}.{os.getpid()}.{threading.get_ident()}.part")
    shutil.copyfile(cache, part)
    part.replace(job.output_path)


# --- Webhooks -------------------------------------------------------------------------------


def schedule_webhook(job: store.SimJob) -> None:
    """Call the job's webhook_url once it is due to finish (polling remains the fallback)."""
    if not job.webhook_url:
        return
    delay = max(0.0, job.created + job.queued_seconds + job.processing_seconds - time.time())
    timer = threading.Timer(delay, _deliver_webhook, args=(job.id,))
    timer.daemon = True
    timer.start()


def _deliver_webhook(job_id: str, attempt: int = 0) -> None:
    from playground.simulator.views import job_body  # the same body the poll answers

    job = store.SimJob.load(job_id)
    if job is None or job.webhook_sent or not job.webhook_url:
        return
    phase = job.phase()
    if phase in {"queued", "processing"} or (phase == "done" and not job.output_path.exists()):
        if attempt < 60:
            threading.Timer(1.0, _deliver_webhook, args=(job_id, attempt + 1)).start()
        return
    body = json.dumps(job_body(job, base_url=settings.AIGATEWAY_BASE_URL)).encode()
    timestamp = str(int(time.time()))
    signature = sign_webhook(timestamp, body)
    try:
        response = httpx.post(
            job.webhook_url,
            content=body,
            timeout=10,
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
        threading.Timer(2.0 * (attempt + 1), _deliver_webhook, args=(job_id, attempt + 1)).start()


def sign_webhook(timestamp: str, body: bytes) -> str:
    secret = settings.AIGATEWAY_WEBHOOK_SECRET.encode()
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()

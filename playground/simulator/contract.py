"""What the simulator says about a job: the body that submits, polls and webhooks carry, and
its signed, expiring result URLs.

It reads the job and says what it sees; starting work is the engine's business and answering
HTTP the views', so both import this and it imports neither.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

from django.conf import settings
from django.urls import reverse

from playground import kling
from playground.lib.video import probe
from playground.simulator import store


def job_body(job: store.SimJob, *, base_url: str) -> dict[str, Any]:
    phase = job.phase()
    if phase == "done" and not job.output_path.exists():
        phase = "processing"  # due, but its output is still being written
    body: dict[str, Any] = {
        "id": job.id,
        "object": "video.generation.job",
        "model": kling.MODEL_ID,
        "created": int(job.created),
        "status": {"done": "completed"}.get(phase, phase),
    }
    if phase == "done":
        body["result"] = {
            "url": result_url(job, base_url),
            "duration": float(job.duration),
            "resolution": _resolution(job),
        }
    elif phase == "failed":
        body["error"] = {
            "code": "generation_failed",
            "message": job.fetch_error or job.fail_message,
        }
    return body


def _resolution(job: store.SimJob) -> str:
    """WxH of the rendered output; read once, then kept in the job file."""
    if not job.resolution:
        facts = probe(job.output_path, thorough=False)
        job.resolution = f"{facts.width}x{facts.height}"
        with store.locked("jobs"):  # save onto a fresh copy: other fields may have moved
            fresh = store.SimJob.load(job.id) or job
            fresh.resolution = job.resolution
            fresh.save()
    return job.resolution


def result_signature(job_id: str, expires: int) -> str:
    """The result URL's signature, with a secret of its own (derived from SECRET_KEY)."""
    key = settings.SIMULATOR_RESULT_URL_SECRET.encode()
    return hmac.new(key, f"sim-result:{job_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def result_url_is_genuine(job_id: str, expires: int, signature: str) -> bool:
    expected = result_signature(job_id, expires)
    return hmac.compare_digest(signature.encode("utf-8", "replace"), expected.encode())


def result_url(job: store.SimJob, base_url: str) -> str:
    expires = int(time.time()) + settings.SIMULATOR_RESULT_TTL_SECONDS
    if job.expired_urls_left > 0:
        with store.locked("jobs"):
            fresh = store.SimJob.load(job.id) or job
            fresh.expired_urls_left -= 1
            fresh.save()
        job.expired_urls_left = fresh.expired_urls_left
        expires = int(time.time()) - 1
    path = reverse("simulator:result", args=[job.id])
    prefix = base_url.removesuffix("/sim")
    return f"{prefix}{path}?expires={expires}&sig={result_signature(job.id, expires)}"

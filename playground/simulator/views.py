"""The simulator's HTTP face: AIgateway's paths, statuses, bodies and headers."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import random
import threading
import time
from typing import Any

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from playground.lib.ranged import ranged_file_response
from playground.simulator import engine, store

MODEL = "kuaishou/kling-video-o1-video-to-video-reference"
ASPECT_RATIOS = {"auto", "16:9", "9:16", "1:1"}


def error(
    status: int,
    message: str,
    type_: str,
    code: str = "",
    param: str = "",
    retry_after: float | None = None,
) -> JsonResponse:
    response = JsonResponse(
        {"error": {"message": message, "type": type_, "code": code or type_, "param": param}},
        status=status,
    )
    if retry_after is not None:
        response["Retry-After"] = f"{retry_after:g}"
    return response


FAULT_TYPES = {
    401: "authentication_error",
    402: "insufficient_credits",
    404: "not_found",
    429: "rate_limit_error",
    500: "server_error",
    503: "service_unavailable",
}


def _injected_fault(route: str, fault: dict[str, Any] | None = None) -> HttpResponse | None:
    fault = fault or store.take_fault(route)
    if fault is None:
        return None
    if fault.get("delay"):
        time.sleep(float(fault["delay"]))
    if fault.get("malformed"):
        return HttpResponse(b'{"id": "job_', content_type="application/json")
    status = int(fault.get("status", 0))
    if not status:
        return None
    type_ = FAULT_TYPES.get(status, "server_error")
    return error(
        status,
        fault.get("message") or f"Simulated {type_}.",
        type_,
        retry_after=fault.get("retry_after"),
    )


def job_body(job: store.SimJob, *, base_url: str) -> dict[str, Any]:
    phase = job.phase()
    body: dict[str, Any] = {
        "id": job.id,
        "object": "video.generation.job",
        "model": MODEL,
        "created": int(job.created),
    }
    if phase == "done" and not job.output_path.exists():
        if time.time() > job.due_at + 20:
            engine.start(job.id)  # the process that rendered it died: start again
        phase = "processing"
    body["status"] = {"done": "completed"}.get(phase, phase)
    if phase == "done":
        body["result"] = {
            "url": _result_url(job, base_url),
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
        from playground.lib.video import probe

        facts = probe(job.output_path, thorough=False)
        job.resolution = f"{facts.width}x{facts.height}"
        with store.locked("jobs"):  # save onto a fresh copy: other fields may have moved
            fresh = store.SimJob.load(job.id) or job
            fresh.resolution = job.resolution
            fresh.save()
    return job.resolution


def _signature(job_id: str, expires: int) -> str:
    key = settings.SECRET_KEY.encode()
    return hmac.new(key, f"sim-result:{job_id}:{expires}".encode(), hashlib.sha256).hexdigest()


def _result_url(job: store.SimJob, base_url: str) -> str:
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
    return f"{prefix}{path}?expires={expires}&sig={_signature(job.id, expires)}"


def _base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/").rstrip("/") + "/sim"


@csrf_exempt
@require_http_methods(["POST"])
def create_generation(request: HttpRequest) -> HttpResponse:
    fault = store.take_fault("submit") or {}
    if fault and (response := _injected_fault("submit", fault)):
        return response
    try:
        data = json.loads(request.body)
        assert isinstance(data, dict)
    except (ValueError, AssertionError):
        return error(400, "The body must be a JSON object.", "invalid_request_error")
    if data.get("model") != MODEL:
        return error(404, f"Unknown model {data.get('model')!r}.", "not_found", param="model")
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > 2500:
        return error(
            400, "prompt must be 1–2500 characters.", "invalid_request_error", param="prompt"
        )
    duration = data.get("duration", 5)
    if not isinstance(duration, int) or not 3 <= duration <= 10:
        return error(
            400,
            "duration must be an integer from 3 to 10.",
            "invalid_request_error",
            param="duration",
        )
    aspect_ratio = data.get("aspect_ratio", "auto")
    if aspect_ratio not in ASPECT_RATIOS:
        return error(
            400,
            "aspect_ratio must be auto, 16:9, 9:16 or 1:1.",
            "invalid_request_error",
            param="aspect_ratio",
        )
    video_url = data.get("video_url")
    if not isinstance(video_url, str) or not video_url.startswith(("http://", "https://")):
        return error(
            400, "video_url must be an http(s) URL.", "invalid_request_error", param="video_url"
        )

    key = request.headers.get("Idempotency-Key", "")
    with store.locked("submit"):
        if key and (existing_id := store.job_for_idempotency_key(key)):
            existing = store.SimJob.load(existing_id)
            if existing is not None:
                return JsonResponse(job_body(existing, base_url=_base_url(request)), status=200)
        job = _new_job(data, prompt, duration, aspect_ratio, video_url)
        job.save()
        if key:
            store.remember_idempotency_key(key, job.id)
    engine.start(job.id)
    engine.schedule_webhook(job)
    if fault.get("delay_after"):
        # Accepted, but the answer is slow: the case where a client may never learn the id.
        time.sleep(float(fault["delay_after"]))
    return JsonResponse(job_body(job, base_url=_base_url(request)), status=202)


def _new_job(
    data: dict, prompt: str, duration: int, aspect_ratio: str, video_url: str
) -> store.SimJob:
    job = store.SimJob(
        id=store.SimJob.new_id(),
        prompt=prompt,
        duration=duration,
        aspect_ratio=aspect_ratio,
        keep_audio=bool(data.get("keep_audio")),
        video_url=video_url,
        webhook_url=str(data.get("webhook_url") or ""),
        queued_seconds=settings.SIMULATOR_QUEUED_SECONDS,
        # Real jobs vary; a jitter spreads them (the benchmark uses it, tests don't).
        processing_seconds=settings.SIMULATOR_PROCESSING_SECONDS
        * (1 + settings.SIMULATOR_PROCESSING_JITTER * (2 * random.random() - 1)),
    )
    # Demo knobs in the prompt: [sim:fail], [sim:fail=message], [sim:slow], [sim:hang].
    lowered = prompt.lower()
    if "[sim:fail" in lowered:
        start = lowered.index("[sim:fail")
        end = prompt.find("]", start)
        message = prompt[start + 9 : end].lstrip("=").strip() if end > 0 else ""
        job.fail_message = message or "The simulated model refused this prompt."
    if "[sim:slow]" in lowered:
        job.processing_seconds *= 10
    if "[sim:hang]" in lowered:
        job.hang = True
    if fault := store.take_fault("job"):
        job.fail_message = fault.get("fail", job.fail_message)
        job.hang = bool(fault.get("hang", job.hang))
        job.processing_seconds = float(fault.get("slow", job.processing_seconds))
        job.expired_urls_left = int(fault.get("expired_urls", 0))
    return job


@csrf_exempt
@require_http_methods(["GET", "DELETE"])
def job_detail(request: HttpRequest, job_id: str) -> HttpResponse:
    if request.method == "DELETE":
        return _cancel(request, job_id)
    if fault := _injected_fault("poll"):
        return fault
    job = store.SimJob.load(job_id)
    if job is None:
        return error(404, f"No job {job_id}.", "not_found")
    if settings.SIMULATOR_POLL_LOG:
        _log_poll(job_id)
    return JsonResponse(job_body(job, base_url=_base_url(request)))


_poll_log_lock = threading.Lock()


def _log_poll(job_id: str) -> None:
    """One line per poll, per process: the benchmark merges them to find early polls."""
    with _poll_log_lock, (store.root() / f"polls-{os.getpid()}.log").open("a") as fh:
        fh.write(f"{job_id} {time.time():.3f}\n")


@csrf_exempt
@require_http_methods(["POST"])
def cancel_job(request: HttpRequest, job_id: str) -> HttpResponse:
    return _cancel(request, job_id)


def _cancel(request: HttpRequest, job_id: str) -> HttpResponse:
    if fault := _injected_fault("cancel"):
        return fault
    with store.locked("jobs"):
        job = store.SimJob.load(job_id)
        if job is None:
            return error(404, f"No job {job_id}.", "not_found")
        phase = job.phase()
        if phase in {"done", "failed"}:
            return error(
                409, "The job has already finished.", "invalid_request_error", code="job_finished"
            )
        if job.cancelled_at is None:
            job.cancelled_at = time.time()
            job.save()
    return JsonResponse(job_body(job, base_url=_base_url(request)))


@require_GET
def result_file(request: HttpRequest, job_id: str) -> HttpResponse:
    if fault := _injected_fault("download"):
        return fault
    job = store.SimJob.load(job_id)
    try:
        expires = int(request.GET.get("expires", "0"))
    except ValueError:
        expires = 0
    signature = request.GET.get("sig", "")
    if job is None or not hmac.compare_digest(signature, _signature(job_id, expires)):
        raise Http404
    if expires < time.time():
        return error(403, "This result URL has expired.", "forbidden", code="url_expired")
    if not job.output_path.exists():
        raise Http404
    return ranged_file_response(request, job.output_path, content_type="video/mp4")

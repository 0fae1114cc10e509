"""The simulator's HTTP face: AIgateway's paths, statuses, bodies and headers.

Only this instance's own client may use it (its API routes want the per-instance key), and
it only fetches this instance's own signed references (the video and any images) and calls
this instance's own webhook: a server that downloads and posts to URLs must not do so for
anyone who asks.
"""

from __future__ import annotations

import functools
import hmac
import json
import os
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseNotModified,
    JsonResponse,
)
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods

from playground import kling
from playground.lib.ranged import ranged_file_response
from playground.runs.references import public_base_url, reference_for_url
from playground.simulator import contract, engine, store

ASPECT_RATIOS = {"auto", *kling.OUTPUT_SIZES}


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


def requires_key(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer AIgateway's 401 unless the request carries `Authorization: Bearer <key>`."""

    @functools.wraps(view)
    def checked(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        scheme, _, key = request.headers.get("Authorization", "").partition(" ")
        # Header values can hold any byte; compare bytes, so garbage is only a wrong key.
        presented = key.strip().encode("utf-8", "replace")
        expected = settings.SIMULATOR_API_KEY.encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented, expected):
            return error(
                401,
                "Missing or invalid API key. Send Authorization: Bearer <key>.",
                "authentication_error",
                code="invalid_api_key",
            )
        return view(request, *args, **kwargs)

    return checked


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
    if status == 304:
        return HttpResponseNotModified()  # "unchanged since your last poll", no body
    type_ = FAULT_TYPES.get(status, "server_error")
    return error(
        status,
        fault.get("message") or f"Simulated {type_}.",
        type_,
        retry_after=fault.get("retry_after"),
    )


def _base_url(request: HttpRequest) -> str:
    return request.build_absolute_uri("/").rstrip("/") + "/sim"


def _is_own_reference_url(url: str) -> bool:
    """A signed reference URL of this instance (or, with a bucket, a presigned URL of a
    reference's object in it) whose token still verifies."""
    return reference_for_url(url) is not None


def _own_webhook_url() -> str:
    return public_base_url() + reverse("webhook")


@csrf_exempt
@require_http_methods(["POST"])
@requires_key
def create_generation(request: HttpRequest) -> HttpResponse:
    fault = store.take_fault("submit") or {}
    if fault and (response := _injected_fault("submit", fault)):
        return response
    try:
        data = json.loads(request.body)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return error(400, "The body must be a JSON object.", "invalid_request_error")
    if data.get("model") != kling.MODEL_ID:
        return error(404, f"Unknown model {data.get('model')!r}.", "not_found", param="model")
    prompt = data.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip() or len(prompt) > kling.PROMPT_MAX_CHARS:
        return error(
            400,
            f"prompt must be 1–{kling.PROMPT_MAX_CHARS} characters.",
            "invalid_request_error",
            param="prompt",
        )
    duration = data.get("duration", 5)
    if not isinstance(duration, int) or duration not in kling.DURATIONS:
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
    if not isinstance(video_url, str) or not _is_own_reference_url(video_url):
        return error(
            400,
            "video_url must be a signed reference URL of this instance; the simulator "
            "downloads nothing else.",
            "invalid_request_error",
            param="video_url",
        )
    image_urls = data.get("image_urls") or []
    if not (
        isinstance(image_urls, list)
        and len(image_urls) <= kling.IMAGE_MAX_COUNT
        and all(isinstance(url, str) and _is_own_reference_url(url) for url in image_urls)
    ):
        return error(
            400,
            f"image_urls must be a list of at most {kling.IMAGE_MAX_COUNT} signed reference "
            "URLs of this instance; the simulator downloads nothing else.",
            "invalid_request_error",
            param="image_urls",
        )
    webhook_url = data.get("webhook_url") or ""
    if webhook_url and webhook_url != _own_webhook_url():
        return error(
            400,
            f"webhook_url must be empty or this instance's own webhook, {_own_webhook_url()}.",
            "invalid_request_error",
            param="webhook_url",
        )

    key = request.headers.get("Idempotency-Key", "")
    with store.locked("submit"):
        if key and (existing_id := store.job_for_idempotency_key(key)):
            existing = store.SimJob.load(existing_id)
            if existing is not None:
                body = contract.job_body(existing, base_url=_base_url(request))
                return JsonResponse(body, status=200)
        limit = settings.SIMULATOR_MAX_ACTIVE_JOBS
        if store.active_job_count() >= limit:
            return error(
                429,
                f"The simulator already holds {limit} unfinished jobs; try again shortly.",
                "rate_limit_error",
                retry_after=5,
            )
        job = _new_job(data, prompt, duration, aspect_ratio, video_url, webhook_url)
        job.save()
        store.mark_active(job)
        if key:
            store.remember_idempotency_key(key, job.id)
    engine.start(job.id)
    engine.schedule_webhook(job)
    if fault.get("delay_after"):
        # Accepted, but the answer is slow: the case where a client may never learn the id.
        time.sleep(float(fault["delay_after"]))
    return JsonResponse(contract.job_body(job, base_url=_base_url(request)), status=202)


def _new_job(
    data: dict, prompt: str, duration: int, aspect_ratio: str, video_url: str, webhook_url: str
) -> store.SimJob:
    job = store.SimJob(
        id=store.SimJob.new_id(),
        prompt=prompt,
        duration=duration,
        aspect_ratio=aspect_ratio,
        keep_audio=bool(data.get("keep_audio")),
        video_url=video_url,
        image_urls=list(data.get("image_urls") or []),  # checked by the caller
        webhook_url=webhook_url,
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
@requires_key
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
    if job.output_lost():
        engine.start(job.id)  # the process that was rendering it died: start again
    return JsonResponse(contract.job_body(job, base_url=_base_url(request)))


_poll_log_lock = threading.Lock()


def _log_poll(job_id: str) -> None:
    """One line per poll, per process: the benchmark merges them to find early polls."""
    with _poll_log_lock, (store.root() / f"polls-{os.getpid()}.log").open("a") as fh:
        fh.write(f"{job_id} {time.time():.3f}\n")


@csrf_exempt
@require_http_methods(["POST"])
@requires_key
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
    store.mark_finished(job.id)
    return JsonResponse(contract.job_body(job, base_url=_base_url(request)))


@require_GET
def result_file(request: HttpRequest, job_id: str) -> HttpResponseBase:
    """The result, for whoever holds its URL: signed and expiring, like a CDN's (no key)."""
    if fault := _injected_fault("download"):
        return fault
    job = store.SimJob.load(job_id)
    try:
        expires = int(request.GET.get("expires", "0"))
    except ValueError:
        expires = 0
    signature = request.GET.get("sig", "")
    if job is None or not contract.result_url_is_genuine(job_id, expires, signature):
        raise Http404
    if expires < time.time():
        return error(403, "This result URL has expired.", "forbidden", code="url_expired")
    if not job.output_path.exists():
        raise Http404
    return ranged_file_response(request, job.output_path, content_type="video/mp4")

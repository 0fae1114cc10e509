"""The one place that speaks provider HTTP: a typed AIgateway client with one error type.

The same code talks to the real AIgateway and to the built-in simulator; only the base URL
and key differ. Transient faults (429, 5xx, timeouts, resets, malformed bodies) are retried
here with capped, jittered backoff (stamina); what is left raises GatewayError, whose
`retryable` tells the caller whether trying later can help.
"""

from __future__ import annotations

import email.utils
import math
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import httpx
import stamina

USER_MESSAGES = {
    401: "The gateway rejected the API key. Check AIGATEWAY_API_KEY.",
    402: "The gateway account is out of credits. Add credits, then try again.",
    404: "The gateway does not know this model, endpoint or job.",
}
RETRYABLE_STATUSES = {408, 425, 429, 500, 502, 503, 504}
# A 10 s 1080p result is tens of MB; past this, an answer is not a result.
MAX_RESULT_BYTES = 2 * 1024**3
# What _call answers for `304 Not Modified`.
NOT_MODIFIED: Any = object()
FINAL_STATUSES = {"completed", "failed", "cancelled"}


class GatewayError(Exception):
    """Anything that went wrong talking to the gateway, in words a user can act on."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str = "",
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.retryable = retryable
        self.retry_after = retry_after


@dataclass(frozen=True)
class Job:
    """A provider job as the gateway last described it, with every variant normalised."""

    id: str
    status: str  # queued | processing | completed | failed | cancelled
    result_url: str = ""
    result_duration: float | None = None
    result_resolution: str = ""
    error_code: str = ""
    error_message: str = ""
    # What the provider says it billed, in micro-dollars, where it says so.
    cost_micros: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @classmethod
    def from_body(cls, body: Any) -> Job:
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise GatewayError(
                "The gateway answered with a body we could not understand.",
                code="malformed_body",
                retryable=True,
            )
        status = str(body.get("status", "")).lower()
        status = {
            "running": "processing",
            "in_progress": "processing",
            "canceled": "cancelled",
            "succeeded": "completed",
            "pending": "queued",
        }.get(status, status)
        if status not in {"queued", "processing", *FINAL_STATUSES}:
            raise GatewayError(
                f"The gateway reported an unknown job status {status!r}.",
                code="malformed_body",
                retryable=True,
            )
        result = _mapping(body.get("result"))
        url = result.get("url") or result.get("file_url") or body.get("result_url") or ""
        duration = result.get("duration")
        error = _mapping(body.get("error"))
        if status == "failed" and not error.get("message"):
            error = {**error, "message": "The provider reported the job as failed."}
        if status == "completed" and not url:
            raise GatewayError(
                "The gateway said the job completed but gave no result URL.",
                code="malformed_body",
                retryable=True,
            )
        return cls(
            id=body["id"],
            status=status,
            result_url=str(url),
            result_duration=_number(duration),
            result_resolution=str(result.get("resolution") or ""),
            error_code=str(error.get("code") or ""),
            error_message=str(
                error.get("message") or ("The job failed." if status == "failed" else "")
            ),
            cost_micros=cost_micros_in(body),
            raw=body,
        )

    @classmethod
    def from_webhook(cls, body: Any) -> tuple[str, Job]:
        """(event id, job) from a webhook delivery, in either documented shape.

        AIgateway's webhooks page documents an event envelope, `{"id": "evt_…", "type":
        "job.completed" | "job.failed", "created": …, "data": {"job_id", "model",
        "result_url", "usage": {"cost_cents"}}}`; its async-jobs page says the job record
        itself is posted. A bare record has no event id ("" then): applying it twice is
        harmless, since it only moves a run forward.
        """
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            return "", cls.from_body(body)
        data = body["data"]
        event_id, kind = body.get("id"), body.get("type")
        if not isinstance(event_id, str) or not isinstance(kind, str):
            raise GatewayError("The webhook event has no id or type.", code="malformed_body")
        record = {**data, "id": data.get("job_id") or data.get("id")}
        record.setdefault("status", EVENT_STATUSES.get(kind, kind.removeprefix("job.")))
        return event_id, cls.from_body(record)


# Event types of AIgateway's webhook envelope, as job statuses.
EVENT_STATUSES = {
    "job.completed": "completed",
    "job.succeeded": "completed",
    "job.failed": "failed",
    "job.cancelled": "cancelled",
    "job.canceled": "cancelled",
    "job.processing": "processing",
    "job.running": "processing",
    "job.queued": "queued",
}


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# Far past anything real (an hour of video costs about $605): a bigger figure is nonsense.
MAX_AMOUNT = 1_000_000


def _number(value: Any) -> float | None:
    """A JSON number that can be an amount (finite, 0 to MAX_AMOUNT, not a bool), else
    None: a provider answering nonsense must not become a bill or a crash."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return float(value) if number and math.isfinite(value) and 0 <= value <= MAX_AMOUNT else None


def cost_micros_in(body: dict[str, Any]) -> int | None:
    """The provider's own figure for what a job cost, wherever it put it.

    `usage.cost_cents` (the webhook envelope's), `cost_cents`, or a dollar amount as
    `cost_usd` / `cost` / `usage.cost`; None when it gives none.
    """
    usage = _mapping(body.get("usage"))
    for value in (usage.get("cost_cents"), body.get("cost_cents")):
        if (cents := _number(value)) is not None:
            return round(cents * 10_000)
    for value in (usage.get("cost_usd"), body.get("cost_usd"), usage.get("cost"), body.get("cost")):
        if (dollars := _number(value)) is not None:
            return round(dollars * 1_000_000)
    return None


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:  # an HTTP date
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None  # unreadable: as if absent, the usual backoff applies
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_from(response: httpx.Response) -> GatewayError:
    status = response.status_code
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    if not isinstance(error, dict):
        error = {"message": str(error)}
    provider_message = str(error.get("message") or "").strip()
    message = USER_MESSAGES.get(status) or (
        f"The gateway is busy (HTTP {status})."
        if status in RETRYABLE_STATUSES
        else f"The gateway refused the request (HTTP {status})."
    )
    if provider_message and provider_message not in message:
        message = f"{message} The gateway said: {provider_message}"
    return GatewayError(
        message,
        status=status,
        code=str(error.get("code") or error.get("type") or ""),
        retryable=status in RETRYABLE_STATUSES,
        retry_after=_retry_after(response) if status in RETRYABLE_STATUSES else None,
    )


def _backoff(exc: Exception) -> bool | float:
    """stamina's hook: retry transient faults, waiting what Retry-After asks for."""
    if isinstance(exc, GatewayError):
        if not exc.retryable:
            return False
        return min(exc.retry_after, 60.0) if exc.retry_after is not None else True
    return isinstance(exc, httpx.TransportError)


GENERATIONS_PATH = "/v1/videos/generations"


def job_body(
    *,
    model: str,
    prompt: str,
    duration: int,
    aspect_ratio: str,
    video_url: str,
    keep_audio: bool,
    image_urls: Sequence[str] = (),
    webhook_url: str = "",
) -> dict[str, Any]:
    """The JSON body that creates a job: one source for the client and the run's export."""
    body: dict[str, Any] = {
        "model": model,
        "prompt": prompt,
        "duration": duration,
        "aspect_ratio": aspect_ratio,
        "video_url": video_url,
        "keep_audio": keep_audio,
    }
    if image_urls:
        body["image_urls"] = list(image_urls)
    if webhook_url:
        body["webhook_url"] = webhook_url
    return body


class JobsAPI(Protocol):
    """What the tracker's steps use of the gateway (a Gateway, or one wrapped with pacing)."""

    def submit(
        self,
        *,
        prompt: str,
        duration: int,
        aspect_ratio: str,
        video_url: str,
        keep_audio: bool,
        idempotency_key: str,
        webhook_url: str = "",
        image_urls: Sequence[str] = (),
    ) -> Job: ...

    def get_job(self, job_id: str) -> Job | None: ...

    def cancel(self, job_id: str) -> None: ...

    def download(self, url: str, dest: Path) -> int: ...


class Gateway:
    """AIgateway's video-generation API (or anything speaking its contract)."""

    def __init__(
        self,
        base_url: str,
        api_key: str = "",
        *,
        model: str,
        timeout: float = 30.0,
        attempts: int = 4,
        retry_timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"User-Agent": "kling-playground/0.1", "Accept": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.model = model
        self.attempts = attempts
        self.retry_timeout = retry_timeout
        self.http = httpx.Client(
            base_url=base_url.rstrip("/"),
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=10.0),
            transport=transport,
            # Drop idle connections before servers do (gunicorn closes them after 2 s), so
            # a request never goes out on a connection the server is closing.
            limits=httpx.Limits(
                max_connections=64, max_keepalive_connections=32, keepalive_expiry=1.5
            ),
        )
        # Result files live on other hosts (a CDN): fetched without gateway credentials.
        self.files = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=10.0, read=120.0),
            transport=transport,
            follow_redirects=True,
        )

    def close(self) -> None:
        self.http.close()
        self.files.close()

    # --- the API ----------------------------------------------------------------------------

    def submit(
        self,
        *,
        prompt: str,
        duration: int,
        aspect_ratio: str,
        video_url: str,
        keep_audio: bool,
        idempotency_key: str,
        webhook_url: str = "",
        image_urls: Sequence[str] = (),
    ) -> Job:
        """Create a job. The idempotency key makes a repeated submit return the same job.

        `image_urls` are the extra reference images, @Image1 first; sent only when there
        are some (a provider may refuse an empty list as well as an unknown field)."""
        body = job_body(
            model=self.model,
            prompt=prompt,
            duration=duration,
            aspect_ratio=aspect_ratio,
            video_url=video_url,
            keep_audio=keep_audio,
            image_urls=image_urls,
            webhook_url=webhook_url,
        )
        return Job.from_body(
            self._call(
                "POST",
                GENERATIONS_PATH,
                json=body,
                headers={"Idempotency-Key": idempotency_key},
            )
        )

    def get_job(self, job_id: str, *, retry: bool = True) -> Job | None:
        """The job's state, or None for `304 Not Modified`: a poll sooner than 3 s after the
        last may get that answer, and it means "unchanged" (not an error).

        retry=False sends one request only: a caller that polls on a schedule (the
        tracker) retries on its next turn, which keeps the 3 s rule."""
        body = self._call("GET", f"/v1/jobs/{job_id}", attempts=None if retry else 1)
        return None if body is NOT_MODIFIED else Job.from_body(body)

    def cancel(self, job_id: str) -> None:
        """Ask the provider to stop a job: the documented POST …/cancel, then DELETE as the
        fallback some docs give (where the POST route is unknown or not allowed)."""
        try:
            self._call("POST", f"/v1/jobs/{job_id}/cancel")
        except GatewayError as exc:
            if exc.status not in {404, 405}:
                raise
            self._call("DELETE", f"/v1/jobs/{job_id}")

    def download(self, url: str, dest: Path) -> int:
        """Stream a result file to dest (atomically); return its size in bytes.

        Result URLs are signed and may have expired: a 401/403/404/410 raises GatewayError
        with code "result_url_expired" so the caller can fetch the job for a fresh URL.
        """
        # Each attempt its own name: two writers can never interleave into one file.
        tmp = dest.with_name(f"{dest.name}.{uuid.uuid4().hex[:12]}.part")
        try:
            size = self._download_to(url, tmp)
        except BaseException:
            tmp.unlink(missing_ok=True)  # never leave half a file behind
            raise
        tmp.replace(dest)
        return size

    def _download_to(self, url: str, tmp: Path) -> int:
        with _transport_errors_as_gateway_errors():
            for attempt in self._retrying():
                with attempt:
                    size = 0
                    with self.files.stream("GET", url) as response:
                        if response.status_code in {401, 403, 404, 410}:
                            raise GatewayError(
                                "The result link has expired.",
                                status=response.status_code,
                                code="result_url_expired",
                            )
                        if response.status_code != 200:
                            raise _error_from(response)
                        with tmp.open("wb") as fh:
                            for chunk in response.iter_bytes(1 << 20):
                                fh.write(chunk)
                                size += len(chunk)
                                if size > MAX_RESULT_BYTES:  # an endless answer fills no disk
                                    raise GatewayError(
                                        "The result file is larger than any video the "
                                        "model makes; it was not kept.",
                                        code="result_too_large",
                                    )
                    if size == 0:
                        raise GatewayError(
                            "The result file was empty.", code="empty_result", retryable=True
                        )
        return size

    # --- plumbing ---------------------------------------------------------------------------

    def _retrying(self, attempts: int | None = None) -> Iterator[stamina.Attempt]:
        return iter(
            stamina.retry_context(
                on=_backoff,
                attempts=attempts or self.attempts,
                timeout=self.retry_timeout,
                wait_initial=0.5,
                wait_max=8.0,
                wait_jitter=1.0,
            )
        )

    def _call(self, method: str, path: str, *, attempts: int | None = None, **kwargs: Any) -> Any:
        with _transport_errors_as_gateway_errors():
            return self._call_with_retries(method, path, attempts=attempts, **kwargs)

    def _call_with_retries(
        self, method: str, path: str, *, attempts: int | None, **kwargs: Any
    ) -> Any:
        for attempt in self._retrying(attempts):
            with attempt:
                response = self.http.request(method, path, **kwargs)
                if response.status_code == 304:
                    return NOT_MODIFIED
                if response.status_code >= 400:
                    raise _error_from(response)
                if response.status_code == 204 or not response.content:
                    return {}
                try:
                    return response.json()
                except ValueError as exc:
                    raise GatewayError(
                        "The gateway answered with a body we could not understand.",
                        status=response.status_code,
                        code="malformed_body",
                        retryable=True,
                    ) from exc
        raise AssertionError("unreachable")  # stamina re-raises the last error


@contextmanager
def _transport_errors_as_gateway_errors() -> Iterator[None]:
    """After the retries, a timeout or reset is still a GatewayError (one error type)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        raise GatewayError(
            "The gateway did not answer in time.", code="timeout", retryable=True
        ) from exc
    except httpx.TransportError as exc:
        raise GatewayError(
            f"Could not reach the gateway ({exc.__class__.__name__}).",
            code="connection_error",
            retryable=True,
        ) from exc

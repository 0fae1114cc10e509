"""The tracker's steps: what a live run needs next, and the HTTP, file and video work for it.

`advance(run, gateway)` does the one next thing a run needs. Every step is safe to repeat
after a crash at any point: it changes the run only through `Run`'s guarded transitions
(conditional UPDATEs from the state it expects), and it sends the provider nothing twice
that could be billed twice (the submit carries the run's UUID as its idempotency key).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from playground.gateway import GatewayError, Job, JobsAPI
from playground.lib import media, video
from playground.runs.models import Run, Status
from playground.runs.references import public_base_url, signed_reference_url, webhooks_enabled

log = logging.getLogger(__name__)

UNCERTAIN_SUBMIT_MESSAGE = (
    "The first submit of this run may have reached the provider before its answer was lost, "
    "and sending it again failed: {reason} A job may exist at the provider, and whether "
    "it was billed is unknown; your gateway dashboard has the final word."
)


def advance(run: Run, gateway: JobsAPI) -> None:
    """Do the one next thing this run needs. Safe to repeat after a crash at any point."""
    resubmit = run.status == Status.SUBMITTING
    try:
        if run.status in (Status.PENDING, Status.SUBMITTING):
            submit(run, gateway)
        elif run.status == Status.FETCHING:
            fetch_result(run, gateway)  # the job is done and billed: a cancel is moot
        elif run.status in (Status.QUEUED, Status.PROCESSING) and deadline_passed(run):
            give_up(run, gateway)  # a pending cancel included: the deadline bounds both
        elif run.cancel_requested and run.provider_job_id:
            cancel_at_provider(run, gateway)
        elif run.status in (Status.QUEUED, Status.PROCESSING):
            poll(run, gateway)
    except GatewayError as exc:
        on_gateway_error(run, exc, resubmit=resubmit)


def on_gateway_error(run: Run, exc: GatewayError, *, resubmit: bool = False) -> None:
    if exc.retryable and run.status == Status.SUBMITTING and deadline_passed(run):
        # Retried with its idempotency key since the deadline's start, and no answer yet:
        # the run stops counting as in flight, saying what may have happened.
        run.finish(
            Status.FAILED,
            error_code="submit_uncertain",
            error_message=UNCERTAIN_SUBMIT_MESSAGE.format(
                reason=f"for {settings.RUN_DEADLINE_MINUTES} minutes the gateway answered "
                f"only with errors to retry (the last: {exc.message.rstrip('.')})."
            ),
            billing_unknown=True,
        )
        return
    if exc.retryable:
        run.wait_and_retry(f"{exc.message} Trying again shortly.", max(exc.retry_after or 0, 5.0))
        return
    if run.status in (Status.PENDING, Status.SUBMITTING):
        if resubmit:
            # A worker died (or timed out) mid-submit, so the provider may hold a job from
            # the first attempt; a refusal now says nothing about that one.
            run.finish(
                Status.FAILED,
                error_code="submit_uncertain",
                error_message=UNCERTAIN_SUBMIT_MESSAGE.format(reason=exc.message),
                billing_unknown=True,
            )
            return
        # The provider refused the job (key, credits, request): nothing was accepted, so
        # the run ends here at $0.
        run.finish(
            Status.FAILED, error_code=exc.code or str(exc.status or ""), error_message=exc.message
        )
        return
    # A job the provider accepted may still run and bill, so a refusal now (a revoked key,
    # say) doesn't end the run: it says so and tries again; the deadline still applies, and
    # the result is still fetched if the job completes.
    run.wait_and_retry(exc.message, 60)


def webhook_url() -> str:
    return public_base_url() + reverse("webhook") if webhooks_enabled() else ""


def submit(run: Run, gateway: JobsAPI) -> None:
    if run.cancel_requested and run.status == Status.PENDING:
        run.finish(Status.CANCELLED)  # nothing was ever sent
        return
    if run.status == Status.PENDING and (problem := _unsendable(run)):
        # The form never makes such a run; this is the last line before money is spent.
        run.finish(Status.FAILED, error_code="invalid_input", error_message=problem)
        return
    # A SUBMITTING run here is one whose worker died mid-call; resubmitting with the same
    # idempotency key returns the job the first call made. A SUBMITTING run that was
    # cancelled is still submitted: only the job's id lets us cancel it.
    if run.status == Status.PENDING and not run.start_submitting():
        return
    if run.reference is None:  # only a deleted run has none, and only a finished one can be
        return
    url = webhook_url()
    job = gateway.submit(
        prompt=run.prompt,
        duration=run.duration,
        aspect_ratio=run.aspect_ratio,
        video_url=signed_reference_url(run.reference),
        keep_audio=run.keep_audio,
        idempotency_key=str(run.code),
        webhook_url=url,
        image_urls=[signed_reference_url(image) for image in run.image_references],
    )
    run.record_submitted(job, webhook=bool(url))


def _unsendable(run: Run) -> str:
    """Why the run's inputs must not go to the provider as they are, or ''."""
    reference = run.reference
    if reference is not None and (reference.is_image or reference.problems):
        return (
            f"“{reference.name}” is not a video the model takes: {reference.problems or 'an image'}"
        )
    if any(not image.is_image for image in run.image_references):
        return "A reference cited as an image is not an image."
    return ""


def deadline_passed(run: Run, *, grace_minutes: int = 0) -> bool:
    minutes = settings.RUN_DEADLINE_MINUTES + grace_minutes
    return timezone.now() > run.started_at + timedelta(minutes=minutes)


# After the deadline, how long a cancel that keeps failing is tried before the run is
# given up with its billing unknown.
CANCEL_GRACE_MINUTES = 10


def poll(run: Run, gateway: JobsAPI) -> None:
    job = gateway.get_job(run.provider_job_id)  # counted by claim_due
    if job is None:
        return  # 304 Not Modified: unchanged since the last poll
    take(run, job, gateway)


def take(run: Run, job: Job, gateway: JobsAPI) -> None:
    """Apply the provider's word; a completed job's result is copied at once."""
    run.apply_job(job)
    if run.status == Status.FETCHING:
        fetch_result(run, gateway)  # at once: the result is what the user waits for


def give_up(run: Run, gateway: JobsAPI) -> None:
    """Past the deadline: cancel at the provider, unless the job finished meanwhile.

    A failed cancel (409 "already finished", a transient error) is no proof the job is
    dead: it is polled, and whatever it says is applied, so a job that completed (and was
    billed) is fetched and billed here, never marked timed out at $0.
    """
    try:
        gateway.cancel(run.provider_job_id)
    except GatewayError as exc:
        if exc.status != 404:
            log.warning("run %s: cancel after the deadline failed: %s", run.code, exc)
            job = gateway.get_job(run.provider_job_id)
            run.count_request()
            if job is not None and job.is_final:
                take(run, job, gateway)
                return
            if deadline_passed(run, grace_minutes=CANCEL_GRACE_MINUTES):
                run.finish(
                    Status.TIMED_OUT,
                    error_code="timed_out",
                    error_message=f"The provider did not finish within "
                    f"{settings.RUN_DEADLINE_MINUTES} minutes, and the job could not be "
                    "cancelled there. Whether it was billed is unknown; your gateway "
                    "dashboard has the final word.",
                    only_from=[Status.QUEUED, Status.PROCESSING],
                    billing_unknown=True,
                )
                return
            run.wait_and_retry(
                "The job is past its deadline and cancelling it at the provider failed; "
                "trying again.",
                10,
            )
            return
    else:
        run.count_request()
    run.finish(
        Status.TIMED_OUT,
        error_code="timed_out",
        error_message=f"The provider did not finish within {settings.RUN_DEADLINE_MINUTES} "
        "minutes, so the job was cancelled.",
        only_from=[Status.QUEUED, Status.PROCESSING],
        billing_unknown=run.status == Status.PROCESSING,
    )


def fetch_result(run: Run, gateway: JobsAPI) -> None:
    """Copy the result into our storage, take a poster, and finish the run."""
    since = run.provider_completed_at or timezone.now()
    if timezone.now() - since > timedelta(minutes=settings.RUN_DEADLINE_MINUTES):
        # The provider made (and billed) the video but we could never fetch it.
        run.finish(
            Status.FAILED,
            error_code="result_unavailable",
            error_message="The provider finished the job, but its result could not be "
            "downloaded before the deadline. It was billed; the gateway dashboard may "
            "still offer the file.",
            only_from=[Status.FETCHING],
            keep_billing=True,
        )
        return
    # Downloaded to a temporary file in chunks (probed and postered there), then streamed
    # to the store in parts: the file is never held in memory, on local files or a bucket.
    with media.scratch(".mp4") as target:
        try:
            gateway.download(run.result_url, target)
        except GatewayError as exc:
            if exc.code == "result_too_large":
                _fail_billed(run, "the file was far larger than any video the model makes")
                return
            if exc.code != "result_url_expired":
                raise
            # Signed result URLs expire: ask the provider for a fresh one, then retry.
            job = gateway.get_job(run.provider_job_id)
            run.count_request()
            if job is None or not job.result_url or job.result_url == run.result_url:
                raise GatewayError(
                    "The result link expired and no new one was given.",
                    code="result_url_expired",
                    retryable=True,
                ) from exc
            run.record_result_url(job.result_url)
            gateway.download(job.result_url, target)
        run.count_request()
        _finish_with_copy(run, target)


# How long a result whose copy our store refused waits before it is downloaded again.
STORE_RETRY_SECONDS = 30


def _finish_with_copy(run: Run, target: Path) -> None:
    """Store the downloaded file `target` and complete the run with it. Our own probe or
    poster failing is no reason to download the (billed) result again: the run completes
    without them, or, when the file is no video at all, fails once with the reason (and
    nothing is stored)."""
    try:
        facts = video.probe(target, thorough=False)
    except video.UnreadableVideo as exc:
        _fail_billed(run, str(exc))
        return
    poster_name = ""
    try:
        with media.scratch(".jpg") as poster:
            try:
                video.save_poster(target, poster)
            except Exception:  # a poster is a nicety: a broken one never costs the result
                log.exception("run %s: no poster could be made of the result", run.code)
            else:
                poster_name = media.save(f"results/{run.code}.jpg", poster)
        result = media.save(f"results/{run.code}.mp4", target)
    except Exception:
        # Our store failed (a bucket down, a full disk): the result is still the provider's
        # to fetch again; wait a while rather than download it every few seconds.
        log.exception("run %s: the result could not be stored", run.code)
        run.wait_and_retry(
            "The result is ready but could not be saved to storage; trying again shortly.",
            STORE_RETRY_SECONDS,
        )
        return
    run.complete(result=result, result_bytes=target.stat().st_size, poster=poster_name, facts=facts)


def _fail_billed(run: Run, why: str) -> None:
    """The provider made (and billed) a result we can't keep: say so once, keep the bill."""
    run.finish(
        Status.FAILED,
        error_code="result_unreadable",
        error_message=f"The provider's result was downloaded, but {why}. It was billed; the "
        "gateway dashboard may still offer the file.",
        only_from=[Status.FETCHING],
        keep_billing=True,
    )


def cancel_at_provider(run: Run, gateway: JobsAPI) -> None:
    """Cancel the job at the provider. A job that had started processing may still be
    billed, so its run ends with billing unknown (the budget counts its estimate)."""
    try:
        gateway.cancel(run.provider_job_id)
    except GatewayError as exc:
        if exc.status == 404:  # the provider no longer knows the job: nothing runs
            run.finish(Status.CANCELLED, only_from=[Status.QUEUED, Status.PROCESSING])
            return
        if exc.status == 409:  # it finished first: the next poll takes what it made
            run.drop_cancel_request()
            return
        if exc.retryable:
            raise  # tried again shortly; the deadline still bounds it
        # Refused for another reason: the job's own word decides (it may have completed).
        job = gateway.get_job(run.provider_job_id)
        run.count_request()
        if job is not None and job.is_final:
            take(run, job, gateway)
            return
        raise
    run.count_request()
    run.finish(
        Status.CANCELLED,
        only_from=[Status.QUEUED, Status.PROCESSING],
        billing_unknown=run.status == Status.PROCESSING,
    )

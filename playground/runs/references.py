"""Reference videos: taking an upload in, and handing the provider a URL it can fetch."""

from __future__ import annotations

import ipaddress
import shutil
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.core import signing
from django.core.files.uploadedfile import UploadedFile
from django.urls import reverse

from playground.lib import video
from playground.lib.media import media_path
from playground.runs.models import Reference
from playground.runs.previews import schedule_preview

SIGNING_SALT = "playground.reference-url"


class ReferenceRejected(ValueError):
    """The upload is not a reference the model takes; the message says why."""


def public_base_url() -> str:
    return settings.PUBLIC_BASE_URL or f"http://127.0.0.1:{settings.PORT}"


def _is_local_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in {"localhost", ""} or host.endswith((".localhost", ".local", ".internal", ".lan")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a DNS name: assume it is public (we can't resolve names from here)
    return address.is_loopback or address.is_private or address.is_link_local


def gateway_is_local() -> bool:
    return _is_local_host(urlsplit(settings.AIGATEWAY_BASE_URL).hostname or "")


def public_url_problem() -> str:
    """Why the provider could not fetch our reference URLs, or '' when it can."""
    if gateway_is_local():
        return ""  # the simulator or a local test server reaches us on loopback
    if not settings.PUBLIC_BASE_URL:
        return (
            "The gateway runs on another machine and must download your reference video, "
            "but PUBLIC_BASE_URL is not set. Set it to an address of this server that the "
            "internet can reach (for example https://playground.example.com)."
        )
    host = urlsplit(settings.PUBLIC_BASE_URL).hostname or ""
    if _is_local_host(host):
        return (
            f"PUBLIC_BASE_URL ({settings.PUBLIC_BASE_URL}) is a loopback or private address, "
            "so the gateway could not download your reference video. Set it to a public "
            "address of this server."
        )
    return ""


def webhooks_enabled() -> bool:
    return (
        settings.AIGATEWAY_WEBHOOKS
        and bool(settings.AIGATEWAY_WEBHOOK_SECRET)
        and not public_url_problem()
        and (not gateway_is_local() or settings.SIMULATOR_ENABLED)
    )


def signed_reference_url(reference: Reference) -> str:
    """An unguessable, expiring URL for the provider to download the reference from."""
    token = signing.dumps(str(reference.code), salt=SIGNING_SALT, compress=True)
    return public_base_url() + reverse("reference_download", args=[token])


def reference_for_token(token: str) -> Reference | None:
    try:
        code = signing.loads(
            token, salt=SIGNING_SALT, max_age=settings.REFERENCE_URL_MAX_AGE_SECONDS
        )
        return Reference.objects.get(code=uuid.UUID(code))
    except (signing.BadSignature, ValueError, Reference.DoesNotExist):
        return None


def store_upload(user: object, upload: UploadedFile) -> Reference:
    """Check an upload against the model's limits; keep it only if it passes.

    The upload is already on disk (Django streams big uploads to a temporary file); it is
    probed where it lies and moved, never read into memory.
    """
    code = uuid.uuid4()
    folder = media_path("references", str(code))
    folder.mkdir(parents=True, exist_ok=True)
    suffix = Path(upload.name or "").suffix.lower()[:8] or ".mp4"
    target = folder / f"original{suffix if suffix in {'.mp4', '.mov'} else '.mp4'}"
    try:
        temp_path = getattr(upload, "temporary_file_path", None)
        if temp_path:
            shutil.copyfile(temp_path(), target)
        else:
            with target.open("wb") as fh:
                for chunk in upload.chunks():
                    fh.write(chunk)
        try:
            facts = video.probe(target)
        except video.UnreadableVideo as exc:
            raise ReferenceRejected(
                f"“{upload.name}” can’t be used: {exc}. Upload an MP4 or MOV video "
                f"(3–10 s, 720–2160 px, 24–60 fps, up to 200 MB)."
            ) from exc
        problems = video.reference_problems(facts)
        if problems:
            raise ReferenceRejected(" ".join(problems))
        poster = folder / "poster.jpg"
        video.save_poster(target, poster)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # nothing is kept of a rejected file
        raise
    relative = Path("references", str(code))
    reference = Reference.objects.create(
        code=code,
        user=user,
        name=Path(upload.name or "reference").name[:255],
        file=str(relative / target.name),
        poster=str(relative / poster.name),
        format_name=facts.format_name,
        codec=facts.codec,
        width=facts.width,
        height=facts.height,
        fps=facts.fps,
        duration=facts.duration,
        size=facts.size,
        has_audio=facts.has_audio,
    )
    schedule_preview(reference)
    return reference

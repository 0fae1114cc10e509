"""Reference videos: taking an upload in, and handing the provider a URL it can fetch."""

from __future__ import annotations

import ipaddress
import math
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.core import signing
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import UploadedFile
from django.db.models import Sum
from django.urls import reverse

from playground import kling
from playground.lib import media, video
from playground.lib.media import size_label
from playground.runs.models import Reference, Run
from playground.runs.previews import schedule_preview

SIGNING_SALT = "playground.reference-url"


class ReferenceRejected(ValueError):
    """The upload is not a reference the model takes; the message says why."""


class ReferenceNeedsFix(ReferenceRejected):
    """The model would refuse the upload as it is, but a conversion can make a copy it takes
    ("Fix it", runs/fixes.py). The upload is kept, with its problems, only for that."""

    def __init__(self, reference: Reference) -> None:
        super().__init__(
            f"{reference.problems} Fix it to make a copy the model takes; "
            f"“{reference.name}” itself is kept as it is."
        )
        self.reference = reference


def public_base_url() -> str:
    """This instance's address for the provider. Behind TLS (HTTPS=true) a public
    `http://` address is taken as its `https://` one: the proxy would only redirect."""
    base = settings.PUBLIC_BASE_URL or f"http://127.0.0.1:{settings.PORT}"
    if (
        settings.HTTPS
        and base.startswith("http://")
        and not _is_local_host(urlsplit(base).hostname or "")
    ):
        base = "https://" + base.removeprefix("http://")
    return base


def _is_local_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in {"localhost", ""} or host.endswith((".localhost", ".local", ".internal", ".lan")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        # A DNS name: public if it has a dot (we can't resolve names from here); a single
        # label (`web`, `minio`) is a name only a local network or a compose file knows.
        return "." not in host
    # Not global: loopback, private, link-local, and shared ranges such as 100.64/10
    # (carrier NAT, Tailscale), which the provider can't reach either.
    return not address.is_global


def public_address_is_local() -> bool:
    """Whether this instance's public address is one only this machine or its network can
    reach (PUBLIC_BASE_URL unset, or set to such a host)."""
    return _is_local_host(urlsplit(public_base_url()).hostname or "")


def gateway_is_local() -> bool:
    return _is_local_host(urlsplit(settings.AIGATEWAY_BASE_URL).hostname or "")


def public_url_problem() -> str:
    """Why the provider could not fetch our reference URLs, or '' when it can."""
    if gateway_is_local():
        return ""  # the simulator or a local test server reaches us on loopback
    if not media.is_local():
        # The provider fetches references from the bucket, not from us: no public address
        # of this instance is needed (webhooks still want one; polling covers them).
        endpoint = getattr(default_storage, "endpoint_url", None) or ""
        if endpoint and _is_local_host(urlsplit(endpoint).hostname or ""):
            return (
                f"MEDIA_S3_ENDPOINT_URL ({endpoint}) is a loopback or private address, so "
                "the gateway could not download your reference video from the bucket. Use "
                "a bucket the internet can reach."
            )
        return ""
    return _address_problem()


def _address_problem() -> str:
    """Why a gateway on another machine could not reach this instance (for references
    on local files, and for webhooks), or ''."""
    if gateway_is_local():
        return ""
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
    # Webhooks come to this instance whether or not references are in a bucket.
    return (
        settings.AIGATEWAY_WEBHOOKS
        and bool(settings.AIGATEWAY_WEBHOOK_SECRET)
        and not _address_problem()
        and (not gateway_is_local() or settings.SIMULATOR_ENABLED)
    )


def signed_reference_url(reference: Reference) -> str:
    """An unguessable, expiring URL for the provider to download the reference from: a
    presigned URL of its object in the bucket, or a signed one of this instance."""
    if not media.is_local():
        return media.object_url(
            reference.file.name,
            seconds=settings.REFERENCE_URL_MAX_AGE_SECONDS,
            content_type=content_type_of(reference),
        )
    token = signing.dumps(str(reference.code), salt=SIGNING_SALT, compress=True)
    return public_base_url() + reverse("reference_download", args=[token])


def reference_for_url(url: str) -> Reference | None:
    """The reference a URL from `signed_reference_url` stands for, or None when it is no
    such URL (the simulator takes only these; expiry is checked when it is fetched)."""
    prefix = public_base_url() + reverse("reference_download", args=["-"]).removesuffix("-")
    if url.startswith(prefix):
        return reference_for_token(url.removeprefix(prefix))
    if media.is_local():
        return None
    # A presigned URL's path names the object, references/<code>/original.…: find that
    # reference, then check this is the URL this instance signs for its file (same scheme,
    # host and path; the bucket checks the signature and the expiry).
    parts = urlsplit(url)
    try:
        code = uuid.UUID(parts.path.split("/")[-2])
    except (IndexError, ValueError):
        return None
    reference = Reference.objects.filter(code=code).first()
    if reference is None:
        return None
    ours = urlsplit(media.object_url(reference.file.name, seconds=1, content_type="video/mp4"))
    same = (ours.scheme, ours.netloc, ours.path) == (parts.scheme, parts.netloc, parts.path)
    # The same signed parameters and nothing more (nor anything tacked on to them).
    query = parse_qs(parts.query)
    signed = set(query) == set(parse_qs(ours.query)) and "?" not in parts.query
    signature = query.get("X-Amz-Signature", [""])[0]
    well_formed = re.fullmatch(r"[0-9a-f]{64}", signature) is not None
    return reference if same and signed and well_formed else None


def content_type_of(reference: Reference) -> str:
    """What a reference's original file is, by the name store_upload / store_image gave it."""
    suffix = reference.file.name.rsplit(".", 1)[-1].lower()
    return {"mov": "video/quicktime", "jpg": "image/jpeg", "png": "image/png"}.get(
        suffix, "video/mp4"
    )


def reference_for_token(token: str) -> Reference | None:
    try:
        code = signing.loads(
            token, salt=SIGNING_SALT, max_age=settings.REFERENCE_URL_MAX_AGE_SECONDS
        )
        return Reference.objects.get(code=uuid.UUID(code))
    except (signing.BadSignature, ValueError, Reference.DoesNotExist):
        return None


@dataclass(frozen=True)
class StorageUse:
    """How much of their storage quota (settings.USER_STORAGE_QUOTA_MB) a user's files use."""

    used: int  # bytes
    quota: int  # bytes; 0 means no quota

    @property
    def used_label(self) -> str:
        return size_label(self.used) if self.used else "0 MB"

    @property
    def quota_label(self) -> str:
        return size_label(self.quota)

    @property
    def percent(self) -> int:
        return min(100, math.ceil(100 * self.used / self.quota)) if self.quota else 0

    def refusal(self, name: str, size: int) -> str:
        """Why an upload of `size` bytes can't be kept, or '' when it fits."""
        if not self.quota or self.used + size <= self.quota:
            return ""
        return (
            f"“{name}” ({size_label(size)}) would take you past your storage quota: you are "
            f"using {self.used_label} of {self.quota_label}. Delete references or runs you no "
            "longer need (on the References and History pages), then upload it again."
        )


def storage_use(user: User) -> StorageUse:
    """What the user's files take: each reference as uploaded, its H.264 preview if one
    was made, and the copied result of each run. Posters (a few KB each) are left out."""
    # Sizes are kept on the rows: two queries, however many files (and no request to a
    # bucket per file).
    references = Reference.objects.filter(user=user).aggregate(
        originals=Sum("size"), previews=Sum("preview_bytes")
    )
    results = Run.objects.filter(user=user).aggregate(total=Sum("result_bytes"))["total"]
    used = (references["originals"] or 0) + (references["previews"] or 0) + (results or 0)
    return StorageUse(used=used, quota=settings.USER_STORAGE_QUOTA_MB * 1024 * 1024)


def store_upload(user: User, upload: UploadedFile) -> Reference:
    """Check an upload against the model's limits and the user's quota; keep it if it passes.

    The cheap checks come first: the size and the quota before the file is copied, then
    what the container's header says (format, size, duration, fps), and only a file that
    passes those has every packet walked to find a cut or damage. The upload is already on
    disk (Django streams big uploads to a temporary file) and is never read into memory;
    it is checked there, and only a file that is kept goes to the store.

    A file whose only problems a conversion can fix (too long, too big, too fast, another
    container) is kept with its problems and raises ReferenceNeedsFix; any other problem
    rejects it and nothing of it is kept.
    """
    name = upload.name or "reference"
    size = upload.size or 0
    if size > kling.REFERENCE_MAX_BYTES:
        raise ReferenceRejected(video.size_problem(size))
    if problem := storage_use(user).refusal(name, size):
        raise ReferenceRejected(problem)
    code = uuid.uuid4()
    suffix = Path(name).suffix.lower()[:8] or ".mp4"
    folder = f"references/{code}"
    original = f"{folder}/original{suffix if suffix in {'.mp4', '.mov'} else '.mp4'}"
    with _on_disk(upload) as path, media.scratch(".jpg") as poster:
        facts = _probe(path, name, thorough=False)
        problems = video.reference_problems(facts)
        if not all(problem.fixable for problem in problems):
            raise ReferenceRejected(" ".join(map(str, problems)))
        _probe(path, name, thorough=True)  # the header is fine: is the rest of it there?
        video.save_poster(path, poster)
        try:
            media.save(original, path)
            media.save(f"{folder}/poster.jpg", poster)
        except BaseException:
            media.delete_folder(folder)  # nothing is kept of a file half stored
            raise
    reference = save_reference(
        user,
        code,
        name,
        original,
        f"{folder}/poster.jpg",
        facts,
        problems=" ".join(map(str, problems)),
    )
    if problems:
        raise ReferenceNeedsFix(reference)
    return reference


@contextmanager
def _on_disk(upload: UploadedFile) -> Iterator[Path]:
    """The upload as a file on disk: Django's own temporary file for a big one, a copy
    for a small one it kept in memory."""
    temp_path = getattr(upload, "temporary_file_path", None)
    if temp_path:
        yield Path(temp_path())
        return
    with media.scratch(Path(upload.name or "").suffix.lower()[:8]) as path:
        with path.open("wb") as fh:
            for chunk in upload.chunks():
                fh.write(chunk)
        yield path


def save_reference(
    user: User,
    code: uuid.UUID,
    name: str,
    original: str,
    poster: str,
    facts: video.VideoFacts,
    *,
    problems: str = "",
    derived_from: Reference | None = None,
) -> Reference:
    """The row of a video already checked and stored (with its poster) in its folder
    (`original` and `poster` are their names in the store), and its H.264 preview
    scheduled if browsers can't play it."""
    reference = Reference.objects.create(
        code=code,
        user=user,
        name=Path(name).name[:255],
        file=original,
        poster=poster,
        format_name=facts.format_name,
        codec=facts.codec,
        width=facts.width,
        height=facts.height,
        fps=facts.fps,
        duration=facts.duration,
        size=facts.size,
        has_audio=facts.has_audio,
        problems=problems,
        derived_from=derived_from,
    )
    schedule_preview(reference)
    return reference


def _probe(path: Path, name: str, *, thorough: bool) -> video.VideoFacts:
    try:
        return video.probe(path, thorough=thorough)
    except video.UnreadableVideo as exc:
        raise ReferenceRejected(
            f"“{name}” can’t be used: {exc}. Upload a video: {kling.reference_limits_text()}."
        ) from exc

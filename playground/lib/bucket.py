"""The bucket backend (MEDIA_S3_BUCKET): django-storages' S3Storage, with one boto3 session
for all its threads.

S3Storage makes a boto3 session, and a resource from it, in every thread that touches a
file. A new session loads the S3 service model again: about 0.1 s, on the first file
request of every web thread and of every storage made anew (each test makes one). Clients
made from one session cost a few ms; making them is not thread-safe, hence the lock. Each
thread still gets a resource of its own, as S3Storage wants (resources are not shared
across threads).
"""

from __future__ import annotations

import threading
from typing import Any

import boto3
from boto3.s3.transfer import TransferConfig
from storages.backends.s3 import S3Storage

_lock = threading.Lock()
_sessions: dict[tuple[str | None, ...], boto3.Session] = {}


class BucketStorage(S3Storage):
    @property
    def connection(self) -> Any:
        if getattr(self._connections, "connection", None) is None:
            with _lock:
                return super().connection
        return self._connections.connection

    def _create_session(self) -> boto3.Session:
        key = (self.session_profile, self.access_key, self.secret_key, self.security_token)
        if key not in _sessions:
            _sessions[key] = super()._create_session()
        return _sessions[key]


def _transfer_config() -> TransferConfig:
    """Files go to the bucket in 5 MB parts (S3's smallest; 50 GB at most in its 10,000),
    two at a time, with no more than two read ahead: boto3 reads ten 8 MB parts ahead by
    default, so one 200 MB upload held 80 MB more (bench/upload_memory.py --s3). Downloads
    are bounded alike. boto3's TransferConfig takes the read-ahead only as an attribute."""
    config = TransferConfig(multipart_chunksize=5 << 20, max_concurrency=2)
    config.max_in_memory_upload_chunks = 2
    config.max_in_memory_download_chunks = 2
    return config


def bucket_storage(
    *,
    bucket: str,
    endpoint_url: str = "",
    region: str = "",
    access_key: str = "",
    secret_key: str = "",
    url_seconds: int,
    spool_bytes: int,
    location: str = "",
) -> dict[str, object]:
    """STORAGES["default"] for a private bucket (settings.py; the tests' own buckets)."""
    return {
        "BACKEND": "playground.lib.bucket.BucketStorage",
        "OPTIONS": {
            "bucket_name": bucket,
            "endpoint_url": endpoint_url or None,
            "region_name": region or None,
            # Unset: boto3 finds credentials itself (an instance role, ~/.aws).
            "access_key": access_key or None,
            "secret_key": secret_key or None,
            "location": location,
            # Private: no ACL is set, so nothing in it is public; every URL is presigned.
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": url_seconds,
            # Names are ours (a reference's folder, a run's code): saving again after a
            # crash replaces the file, as on local files.
            "file_overwrite": True,
            "signature_version": "s3v4",
            # Other S3-compatible servers (MinIO, moto, …) take bucket names in the path.
            "addressing_style": "path" if endpoint_url else None,
            # A stored file opened for reading spools to disk past this, not to memory.
            "max_memory_size": spool_bytes,
            "transfer_config": _transfer_config(),
        },
    }

"""Uploaded and generated files, through Django's storage API only.

STORAGES["default"] is files under MEDIA_ROOT (`LocalMediaStorage`) or, with
MEDIA_S3_BUCKET, a private S3-compatible bucket (django-storages): every file is named,
saved, opened, sized and deleted through `default_storage`, so both are one code path.
PyAV and Pillow want a file on disk: `local_copy` gives them one, and their outputs go
back through `save`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, default_storage

# How much of a file is copied at a time between the store and a temporary file.
CHUNK = 1024 * 1024


class LocalMediaStorage(FileSystemStorage):
    """Files under MEDIA_ROOT that behave as a bucket's objects do: saving a name replaces
    its file whole and at once (written beside it, then renamed), so a reader never sees
    half a file, and a task that saves again after a crash keeps the name it had."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_overwrite", True)
        super().__init__(**kwargs)

    def _save(self, name: str, content: File) -> str:
        target = Path(self.path(name))
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, partial = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                for chunk in content.chunks(CHUNK):
                    fh.write(chunk)
            if self.file_permissions_mode is not None:
                os.chmod(partial, self.file_permissions_mode)
            os.replace(partial, target)
        except BaseException:
            Path(partial).unlink(missing_ok=True)
            raise
        return name.replace("\\", "/")


def is_local() -> bool:
    """Whether stored files have paths on this machine (False for a bucket)."""
    try:
        default_storage.path("")
    except NotImplementedError:
        return False
    return True


@contextmanager
def local_copy(name: str) -> Iterator[Path]:
    """A path on disk holding the stored file `name`, for PyAV and Pillow: the file itself
    on local storage, else a temporary copy streamed from the store in chunks and removed
    afterwards. Raises FileNotFoundError when there is no such file."""
    if is_local():
        path = Path(default_storage.path(name))
        if not path.is_file():
            raise FileNotFoundError(name)
        yield path
        return
    with scratch(Path(name).suffix) as path:
        with default_storage.open(name, "rb") as source, path.open("wb") as copy:
            shutil.copyfileobj(source, copy, CHUNK)
        yield path


@contextmanager
def scratch(suffix: str = "") -> Iterator[Path]:
    """The path of a new, empty temporary file, removed afterwards: where outputs are
    written before `save` puts them in the store."""
    # Beside Django's own temporary uploads (FILE_UPLOAD_TEMP_DIR; unset, the system's).
    fd, name = tempfile.mkstemp(
        suffix=suffix, prefix="playground-", dir=settings.FILE_UPLOAD_TEMP_DIR
    )
    os.close(fd)
    path = Path(name)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def save(name: str, path: Path) -> str:
    """Store the local file `path` as `name` (replacing what was there); returns the name.
    Streamed: the bucket gets it in parts, never the whole file in memory."""
    with path.open("rb") as fh:
        return default_storage.save(name, File(fh, name=Path(name).name))


def delete_folder(folder: str) -> None:
    """Delete every file under `folder` (a bucket has no folders: its keys go one by one)."""
    if not folder.strip("/") or folder.startswith(("/", ".")):
        # An empty name here would be the whole store: never, whatever a row says.
        raise ValueError(f"refusing to delete the folder {folder!r}")
    try:
        folders, files = default_storage.listdir(folder)
    except FileNotFoundError:
        return
    for sub in folders:
        delete_folder(f"{folder}/{sub}")
    for file in files:
        default_storage.delete(f"{folder}/{file}")
    if is_local():
        # A bucket's "folder" goes with its last key; a directory has to be removed.
        shutil.rmtree(default_storage.path(folder), ignore_errors=True)


def delete(name: str) -> None:
    if name:
        default_storage.delete(name)


def size_of(name: str) -> int:
    """The stored file's size in bytes; 0 when it is gone (or was never written)."""
    try:
        return default_storage.size(name) if name else 0
    except (FileNotFoundError, OSError):
        return 0


def object_url(
    name: str, *, seconds: int, content_type: str, download_as: str | None = None
) -> str:
    """A presigned GET URL of `name` in the bucket, valid for `seconds`, that answers with
    the given Content-Type (and as an attachment called `download_as`). Bucket only."""
    parameters = {"ResponseContentType": content_type}
    if download_as:
        parameters["ResponseContentDisposition"] = f'attachment; filename="{download_as}"'
    # S3Storage.url takes these; the base Storage.url's signature does not say so.
    return cast(Any, default_storage).url(name, parameters=parameters, expire=seconds)


def size_label(size: int) -> str:
    """File sizes as people read them: 1.5 MB, 200 MB, 200.4 MB, 12 KB."""
    if size < 1024 * 1024:
        return f"{max(1, round(size / 1024))} KB"
    return f"{size / 1024 / 1024:.1f}".removesuffix(".0") + " MB"


def sizes_apart(size: int, limit: int) -> tuple[str, str]:
    """A size over a limit and the limit, as people read them, in bytes as well when both
    would round to the same label ("10 MB; at most 10 MB" would make no sense)."""
    if size_label(size) == size_label(limit):
        return f"{size:,} bytes", f"{size_label(limit)} ({limit:,} bytes)"
    return size_label(size), size_label(limit)

"""File responses that honour HTTP Range, so <video> can seek (Django's FileResponse doesn't)."""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import IO, Literal

from django.core.files.storage import default_storage
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase
from django.utils.http import http_date

# One range, "bytes=first-last", "bytes=first-" or "bytes=-suffix". ASCII digits only: `\d`
# would also take other scripts' digits, which int() reads. Range units are case-insensitive.
RANGE = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.ASCII | re.IGNORECASE)
CHUNK = 256 * 1024


class _Slice:
    """A read-only file window [start, start+length) that FileResponse can stream."""

    def __init__(self, fh: IO[bytes], start: int, length: int) -> None:
        self.fh = fh
        self.fh.seek(start)
        self.remaining = length

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        size = self.remaining if size < 0 else min(size, self.remaining)
        data = self.fh.read(size)
        self.remaining -= len(data)
        return data

    def close(self) -> None:
        self.fh.close()


def _digits_key(digits: str) -> tuple[int, str]:
    """Orders digit strings by their value without int(): Python refuses int() of over
    4,300 digits, and a hostile header can send thousands (or pad with zeros)."""
    digits = digits.lstrip("0") or "0"
    return len(digits), digits


def _position(digits: str, size: int) -> int:
    """A byte position from the header, capped at `size` (past the end is past the end)."""
    key = _digits_key(digits)
    return int(key[1]) if key <= _digits_key(str(size)) else size


def _requested_span(header: str, size: int) -> tuple[int, int] | Literal["unsatisfiable"] | None:
    """(first, last) byte of a satisfiable single range; None to serve the whole file;
    "unsatisfiable" for a valid range starting at or past the end (or an empty suffix).

    RFC 9110 §14.2 lets a server ignore a Range it does not take: several ranges, other
    units, junk, and invalid ones such as `bytes=5-3` (last before first) get the whole file.
    """
    match = RANGE.fullmatch(header.strip()) if header else None
    if not match or not any(match.groups()):
        return None
    first, last = match.groups()
    if first:
        if last and _digits_key(last) < _digits_key(first):
            return None  # invalid (RFC 9110 §14.1.1)
        start = _position(first, size)
        end = min(_position(last, size), size - 1) if last else size - 1
    else:  # a suffix range: the last N bytes
        start, end = size - _position(last, size), size - 1
    return "unsatisfiable" if start >= size else (start, end)


def ranged_file_response(
    request: HttpRequest,
    path: Path,
    *,
    content_type: str | None = None,
    filename: str | None = None,
    as_attachment: bool = False,
) -> HttpResponseBase:
    """A file on disk: 200 with the whole file, 206 for a satisfiable single range, 416
    otherwise."""
    stat = path.stat()
    return _ranged(
        request,
        lambda: path.open("rb"),
        size=stat.st_size,
        modified=stat.st_mtime,
        name=path.name,
        content_type=content_type,
        filename=filename,
        as_attachment=as_attachment,
    )


def ranged_stored_response(
    request: HttpRequest,
    name: str,
    *,
    content_type: str | None = None,
    filename: str | None = None,
    as_attachment: bool = False,
) -> HttpResponseBase:
    """The same for a file in the default storage (the views redirect to a bucket instead,
    which honours Range itself)."""
    modified: datetime = default_storage.get_modified_time(name)
    return _ranged(
        request,
        lambda: default_storage.open(name, "rb"),
        size=default_storage.size(name),
        modified=modified.timestamp(),
        name=name,
        content_type=content_type,
        filename=filename,
        as_attachment=as_attachment,
    )


def _ranged(
    request: HttpRequest,
    opener: Callable[[], IO[bytes]],
    *,
    size: int,
    modified: float,
    name: str,
    content_type: str | None,
    filename: str | None,
    as_attachment: bool,
) -> HttpResponseBase:
    content_type = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
    span = _requested_span(request.headers.get("Range", ""), size)
    if span == "unsatisfiable":
        refusal = HttpResponse(status=416)
        refusal["Content-Range"] = f"bytes */{size}"
        refusal["Accept-Ranges"] = "bytes"
        return refusal
    if span is not None:
        start, end = span
        length = end - start + 1
        streamed = FileResponse(
            _Slice(opener(), start, length), status=206, content_type=content_type
        )
        streamed["Content-Range"] = f"bytes {start}-{end}/{size}"
    else:
        streamed = FileResponse(opener(), content_type=content_type)
        length = size
    streamed.block_size = CHUNK
    streamed["Content-Length"] = str(length)
    response = streamed
    response["Accept-Ranges"] = "bytes"
    response["Last-Modified"] = http_date(modified)
    response["Cache-Control"] = "private, max-age=3600"
    disposition = "attachment" if as_attachment else "inline"
    if filename:
        response["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    return response

"""File responses that honour HTTP Range, so <video> can seek (Django's FileResponse doesn't)."""

from __future__ import annotations

import mimetypes
import re
from pathlib import Path

from django.http import FileResponse, HttpRequest, HttpResponse
from django.utils.http import http_date

RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
CHUNK = 256 * 1024


class _Slice:
    """A read-only file window [start, start+length) that FileResponse can stream."""

    def __init__(self, path: Path, start: int, length: int) -> None:
        self.fh = path.open("rb")
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


def ranged_file_response(
    request: HttpRequest,
    path: Path,
    *,
    content_type: str | None = None,
    filename: str | None = None,
    as_attachment: bool = False,
) -> HttpResponse:
    """200 with the whole file, 206 for a satisfiable single range, 416 otherwise."""
    size = path.stat().st_size
    content_type = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    header = request.headers.get("Range", "")
    match = RANGE.match(header.strip()) if header else None
    if header and not match:
        # Multi-range or unknown units: serving the whole file is allowed by RFC 9110.
        match = None
    if match and (match.group(1) or match.group(2)):
        first, last = match.groups()
        if first:
            start = int(first)
            end = min(int(last), size - 1) if last else size - 1
        else:  # a suffix range: the last N bytes
            start = max(0, size - int(last))
            end = size - 1
        if start >= size or start > end:
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
            response["Accept-Ranges"] = "bytes"
            return response
        response = FileResponse(
            _Slice(path, start, end - start + 1), status=206, content_type=content_type
        )
        response.block_size = CHUNK
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
        response["Content-Length"] = str(end - start + 1)
    else:
        response = FileResponse(path.open("rb"), content_type=content_type)
        response.block_size = CHUNK
        response["Content-Length"] = str(size)
    response["Accept-Ranges"] = "bytes"
    response["Last-Modified"] = http_date(path.stat().st_mtime)
    response["Cache-Control"] = "private, max-age=3600"
    disposition = "attachment" if as_attachment else "inline"
    if filename:
        response["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    return response

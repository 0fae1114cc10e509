"""Uploads refused while they stream: no file past the reference size limit reaches disk.

Django's own handlers store a whole upload (in memory or a temporary file) before the form
can look at its size. `ReferenceSizeLimit` goes first in FILE_UPLOAD_HANDLERS and passes
bytes on to them only while the file is within kling.REFERENCE_MAX_BYTES:

- when the request's Content-Length already says the body is over the limit (plus room for
  the form's other fields), no file in it is handed to the storing handlers at all;
- otherwise, the moment a file grows past the limit, what they stored is deleted and they
  get no more of it.

A refused file is not dropped silently: in its place the form gets an `OversizedUpload`, a
file with the real size and no content, so its size check names the size and the limit at
the reference field. The rest of the body is read and discarded (Django's parser goes on to
the fields after the file, so nothing the user typed is lost); answering before the body is
read would show a "connection reset" instead of the message (see StopUpload's
connection_reset in django.core.files.uploadhandler).
"""

from __future__ import annotations

import io
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers
from django.http import HttpRequest

from playground import kling

# What the Generate form sends besides the file: a prompt of up to 2,500 characters (4 bytes
# each at most), a CSRF token, an idempotency key, a few choices and multipart framing. This
# holds all of that several times over, so a file just under the limit is never refused
# for the fields around it.
BODY_MARGIN_BYTES = 64 * 1024
# The views that take a file. Any other view (log-in, sign-up: public ones among them)
# gets none stored, so nobody can make the server write 200 MB temporary files through a
# form that never wanted one.
UPLOAD_VIEWS = {"generate"}


class OversizedUpload(UploadedFile):
    """Stands for a file refused for its size: its name and size, and no content."""

    def __init__(
        self,
        name: str,
        size: int,
        content_type: str | None,
        charset: str | None,
        content_type_extra: dict[str, bytes] | None,
    ) -> None:
        super().__init__(io.BytesIO(), name, content_type, size, charset, content_type_extra)


class ReferenceSizeLimit(FileUploadHandler):
    """The gate in front of Django's storing handlers (see the module's docstring)."""

    def __init__(self, request: HttpRequest | None = None) -> None:
        super().__init__(request)
        self.body_length = 0
        self.body_too_large = False
        self.refused = False

    def handle_raw_input(
        self,
        input_data: Any,
        META: dict[str, Any],
        content_length: int,
        boundary: str,
        encoding: str | None = None,
    ) -> None:
        self.body_length = content_length or 0
        self.body_too_large = self.body_length > kling.REFERENCE_MAX_BYTES + BODY_MARGIN_BYTES
        return None  # Django's parser parses the body, as usual

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        # Only the body's length is trusted (the WSGI server reads no further); a part's own
        # Content-Length, rarely sent, is whatever the client says.
        match = getattr(self.request, "resolver_match", None)
        wanted = match is not None and match.url_name in UPLOAD_VIEWS
        self.refused = self.body_too_large or not wanted
        if self.refused:
            raise StopFutureHandlers  # the storing handlers never hear of this file

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        if not self.refused and start + len(raw_data) > kling.REFERENCE_MAX_BYTES:
            self.refused = True
            self._discard_what_later_handlers_stored()
        return None if self.refused else raw_data  # None: later handlers get nothing

    def file_complete(self, file_size: int) -> UploadedFile | None:
        if not self.refused:
            return None  # the storing handler that took the file returns it
        self.refused = False
        # Refused up front, the file may end up small (another part made the body big): then
        # the body's size is the one to name, and it is over the limit.
        size = file_size if file_size > kling.REFERENCE_MAX_BYTES else self.body_length
        return OversizedUpload(
            self.file_name or "upload",
            size,
            self.content_type,
            self.charset,
            self.content_type_extra,
        )

    def _discard_what_later_handlers_stored(self) -> None:
        """Delete the part of this file that the handlers after this one stored so far."""
        handlers = list(self.request.upload_handlers) if self.request is not None else []
        if self not in handlers:
            return
        for handler in handlers[handlers.index(self) + 1 :]:
            handler.upload_interrupted()  # the temporary file handler deletes its file
            if (stored := getattr(handler, "file", None)) is not None:
                stored.close()  # as Django's parser does for an interrupted upload

"""Where uploaded and generated files live on disk (under MEDIA_ROOT)."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def media_path(*parts: str) -> Path:
    return Path(settings.MEDIA_ROOT).joinpath(*parts)


def size_label(size: int) -> str:
    """File sizes as people read them: 1.5 MB, 200 MB, 200.4 MB, 12 KB."""
    if size < 1024 * 1024:
        return f"{max(1, round(size / 1024))} KB"
    return f"{size / 1024 / 1024:.1f}".removesuffix(".0") + " MB"

"""`manage.py collectstatic`, one at a time per STATIC_ROOT.

Every `make run` collects the static files at start, into the checkout's STATIC_ROOT. Two
instances started together from one checkout (two ports standing in for two machines)
would otherwise race: whitenoise compresses each file after hashing it, and one instance's
clean-up deletes files the other is about to compress (FileNotFoundError). An exclusive
lock on a file beside STATIC_ROOT makes the second wait for the first and then find every
file already collected.
"""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.staticfiles.management.commands import collectstatic


class Command(collectstatic.Command):
    def handle(self, **options: Any) -> str | None:
        root = Path(settings.STATIC_ROOT)
        root.parent.mkdir(parents=True, exist_ok=True)
        with (root.parent / f".{root.name}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            return super().handle(**options)

"""Signal handlers: resume tracking when a worker starts; delete files with their rows."""

from __future__ import annotations

import logging
import shutil

from django.db.models.signals import post_delete
from django.dispatch import receiver
from django_q.signals import post_spawn

from playground.lib.media import media_path
from playground.runs.tracker import sweep

log = logging.getLogger(__name__)


@receiver(post_spawn)
def resume_tracking(sender: object, proc_name: str, **kwargs: object) -> None:
    try:
        sweep()
    except Exception:  # a worker must start even if the database is briefly unavailable
        log.exception("could not resume tracking at worker start")


@receiver(post_delete, sender="runs.Run")
def delete_run_files(sender: object, instance: object, **kwargs: object) -> None:
    for field in ("result", "poster"):
        _remove(getattr(instance, field).name)


@receiver(post_delete, sender="runs.Reference")
def delete_reference_files(sender: object, instance: object, **kwargs: object) -> None:
    name = instance.file.name  # type: ignore[attr-defined]
    if name:
        shutil.rmtree(media_path(name).parent, ignore_errors=True)


def _remove(name: str) -> None:
    if name:
        media_path(name).unlink(missing_ok=True)

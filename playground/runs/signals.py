"""Signal handlers: delete files with their rows."""

from __future__ import annotations

import logging
import shutil

from django.db.models.signals import post_delete
from django.dispatch import receiver

from playground.lib.media import media_path
from playground.lib.thumbnails import remove_thumbnail
from playground.runs.models import Reference, Run

log = logging.getLogger(__name__)


@receiver(post_delete, sender=Run)
def delete_run_files(sender: type[Run], instance: Run, **kwargs: object) -> None:
    for name in (instance.result.name, instance.poster.name):
        _remove(name)
    if instance.poster.name:
        remove_thumbnail(media_path(instance.poster.name))


@receiver(post_delete, sender=Reference)
def delete_reference_files(sender: type[Reference], instance: Reference, **kwargs: object) -> None:
    name = instance.file.name
    if name:
        shutil.rmtree(media_path(name).parent, ignore_errors=True)


def _remove(name: str | None) -> None:
    if name:
        media_path(name).unlink(missing_ok=True)

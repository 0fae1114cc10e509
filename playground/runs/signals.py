"""Signal handlers: delete files with their rows."""

from __future__ import annotations

import logging
import posixpath

from django.db.models.signals import post_delete
from django.dispatch import receiver

from playground.lib import media
from playground.lib.thumbnails import remove_thumbnail
from playground.runs.models import Reference, Run

log = logging.getLogger(__name__)


@receiver(post_delete, sender=Run)
def delete_run_files(sender: type[Run], instance: Run, **kwargs: object) -> None:
    for name in (instance.result.name, instance.poster.name):
        media.delete(name)
    remove_thumbnail(instance.poster.name)


@receiver(post_delete, sender=Reference)
def delete_reference_files(sender: type[Reference], instance: Reference, **kwargs: object) -> None:
    # Everything of a reference (original, poster, preview, thumbnail) is in its folder.
    if name := instance.file.name:
        media.delete_folder(posixpath.dirname(name))

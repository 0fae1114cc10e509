"""`manage.py migrate`, one at a time per database.

Every `make run` (every machine of a deployment) migrates at start. Django's migrate is not
safe to run twice at once: two instances started together on a fresh PostgreSQL would both
try to create the same tables. A session-level advisory lock makes the second wait for the
first and then find nothing left to do. SQLite needs none: its file lock serialises writers.
"""

from __future__ import annotations

from typing import Any

from django.core.management.commands import migrate
from django.db import connections

# Any constant both instances agree on; this one spells "kling" in ASCII.
MIGRATE_LOCK = 0x6B6C696E67


class Command(migrate.Command):
    def handle(self, *args: Any, **options: Any) -> None:
        connection = connections[options["database"]]
        if connection.vendor != "postgresql":
            super().handle(*args, **options)
            return
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [MIGRATE_LOCK])
        try:
            super().handle(*args, **options)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [MIGRATE_LOCK])

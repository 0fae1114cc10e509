"""Several instances of one deployment migrate at start; on PostgreSQL they take turns."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.services import create_database, drop_database, is_postgres

ROOT = Path(__file__).resolve().parent.parent


def _server_url() -> str:
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}:{db['PASSWORD']}@{db['HOST']}:{db['PORT']}/{db['NAME']}"


@pytest.mark.skipif(
    not is_postgres(os.environ.get("DATABASE_URL", "")),
    reason="PostgreSQL only (tests/postgres.py)",
)
def test_two_instances_migrating_a_fresh_database_at_once_both_succeed(tmp_path):
    url = create_database(_server_url())
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "VAR_DIR": str(tmp_path),
        "SECRET_KEY": "migrate-test-secret-key-not-for-production",
        "DJANGO_SETTINGS_MODULE": "playground.settings",
    }
    try:
        processes = [
            subprocess.Popen(
                [sys.executable, "manage.py", "migrate", "--noinput"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for _ in range(3)
        ]
        outputs = [process.communicate(timeout=300)[0].decode() for process in processes]
        assert [process.returncode for process in processes] == [0, 0, 0], outputs
        # One of them did the work; the others found it done.
        assert sum("Applying runs.0001_initial" in output for output in outputs) == 1
    finally:
        drop_database(url)

#!/usr/bin/env python
"""Run pytest on the real engines: `python tests/postgres.py [pytest args]`.

It starts a throwaway PostgreSQL, a Redis (tests/services.py) and moto's S3 server
(tests/s3.py), each on a free loopback port, points DATABASE_URL, REDIS_URL and MEDIA_S3_*
at them, runs pytest with the given arguments, and stops and removes them whatever happens.
Redis is then django-q2's broker and Django's cache for the whole pass (each xdist worker
on a database of its own, tests/settings.py). The exit status is pytest's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run as a script: make `tests` importable

from tests.s3 import s3_server  # noqa: E402
from tests.services import postgres, redis_server  # noqa: E402


def main() -> int:
    with ExitStack() as servers:
        env = {
            **os.environ,
            "DATABASE_URL": servers.enter_context(postgres()),
            "REDIS_URL": servers.enter_context(redis_server()),
        }
        env.update(servers.enter_context(s3_server()))
        return subprocess.run(
            [sys.executable, "-m", "pytest", *sys.argv[1:]], cwd=ROOT, env=env
        ).returncode


if __name__ == "__main__":
    sys.exit(main())

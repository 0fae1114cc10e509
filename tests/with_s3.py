#!/usr/bin/env python
"""Run pytest with the media in a bucket: `python tests/with_s3.py [pytest args]`.

Starts moto's S3 server on a free loopback port (tests/s3.py), sets MEDIA_S3_* to a new
bucket on it, runs pytest with the given arguments and stops the server whatever happens.
Each test keeps its files under a key prefix of its own (tests/conftest.py). The exit
status is pytest's.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.s3 import s3_server  # noqa: E402


def main() -> int:
    with s3_server() as s3:
        env = {**os.environ, **s3}
        return subprocess.run(
            [sys.executable, "-m", "pytest", *sys.argv[1:]], cwd=ROOT, env=env
        ).returncode


if __name__ == "__main__":
    sys.exit(main())

"""Several `make run`s (three here) started together from one checkout collect the static
files at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_collectstatics_at_once_into_one_fresh_root_both_succeed(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "playground.settings",
        "VAR_DIR": str(tmp_path / "var"),
        "SECRET_KEY": "collectstatic-test-secret-key",
        "STATIC_ROOT": str(tmp_path / "staticfiles"),
    }
    command = [sys.executable, "manage.py", "collectstatic", "--noinput", "--verbosity", "0"]
    both = [
        subprocess.Popen(command, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    errors = [process.communicate(timeout=120)[1] for process in both]
    assert [process.returncode for process in both] == [0, 0, 0], errors
    assert (tmp_path / "staticfiles" / "staticfiles.json").exists()

"""The real thing in separate processes: gunicorn serving the app (with the simulator), a
django-q2 `qcluster` and the previews' own qcluster, on a throwaway VAR_DIR and a free
loopback port.

Used by the tests that kill workers and by the browser test. The test process reads the
stack's SQLite database directly and drives it over HTTP like a user would.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from django.test import override_settings

from playground.runs.management.commands.serve import process_commands, split_env
from playground.simulator import store

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(check: Callable[[], Any], timeout: float = 30.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(every)
    raise TimeoutError(f"gave up after {timeout} s waiting for {check}")


class Stack:
    def __init__(self, root: Path, *, web_workers: int = 1, **env: str) -> None:
        self.root = root
        self.web_workers = web_workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.var = root / "var"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("AIGATEWAY_")}
        self.env.update(
            {
                "DJANGO_SETTINGS_MODULE": "playground.settings",
                "VAR_DIR": str(self.var),
                "PORT": str(self.port),
                "SECRET_KEY": "stack-test-secret-key-not-for-production",
                "SIMULATOR_QUEUED_SECONDS": "0.5",
                "SIMULATOR_PROCESSING_SECONDS": "1.5",
                "TRACKER_LEASE_SECONDS": "6",
                "Q_WORKERS": "2",
                "LOG_LEVEL": "WARNING",
                **env,
            }
        )
        self.web: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.previews: subprocess.Popen[bytes] | None = None
        self.logs = root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)

    # --- processes ------------------------------------------------------------------------

    def manage(self, *args: str, **extra_env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            check=True,
            env={**self.env, **extra_env},
            capture_output=True,
            text=True,
        )

    def start(self) -> Stack:
        self.manage("migrate", "--noinput")
        self.manage("collectstatic", "--noinput", "--verbosity", "0")
        self.start_web()
        self.start_worker()
        self.start_previews()
        return self

    def _spawn(self, name: str, cmd: list[str]) -> subprocess.Popen[bytes]:
        extra_env, cmd = split_env(cmd)
        log = (self.logs / f"{name}.log").open("ab")
        return subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**self.env, **extra_env},
            stdout=log,
            stderr=log,
            start_new_session=True,  # so a test can kill a whole qcluster with killpg
        )

    def start_web(self) -> None:
        self.web = self._spawn(
            "web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "playground.wsgi:application",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(self.web_workers),
                "--worker-class",
                "gthread",
                "--threads",
                "16",
                "--timeout",
                "120",
            ],
        )
        wait_for(self._web_up, timeout=30)

    def _web_up(self) -> bool:
        try:
            return httpx.get(self.url + "/accounts/login/", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def start_worker(self) -> None:
        self.worker = self._spawn("worker", process_commands(python=sys.executable)["worker"])

    def start_previews(self) -> None:
        """The cluster of preview transcodes (settings.Q_CLUSTER's ALT_CLUSTERS)."""
        self.previews = self._spawn("previews", process_commands(python=sys.executable)["previews"])

    def kill_worker(self, sig: int = signal.SIGKILL) -> None:
        """Kill the whole qcluster (sentinel, pusher, workers) at once, as a crash would."""
        assert self.worker is not None
        os.killpg(self.worker.pid, sig)
        self.worker.wait(timeout=30)
        self.worker = None

    def stop(self) -> None:
        for process in (self.worker, self.previews, self.web):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=3)  # every step is crash-safe: no need to wait long
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)

    # --- what the stack knows -------------------------------------------------------------

    def query(self, sql: str, *params: Any) -> list[sqlite3.Row]:
        db = sqlite3.connect(self.var / "db.sqlite3", timeout=30)
        db.row_factory = sqlite3.Row
        try:
            return db.execute(sql, params).fetchall()
        finally:
            db.close()

    def run(self, code: str) -> sqlite3.Row:
        return self.query("SELECT * FROM runs_run WHERE code = ?", code.replace("-", ""))[0]

    def simulator_jobs(self) -> list[str]:
        return sorted(p.stem for p in (self.var / "simulator" / "jobs").glob("job_*.json"))

    def add_fault(self, **fault: Any) -> None:
        with override_settings(SIMULATOR_ROOT=self.var / "simulator"):
            store.add_fault(**fault)

    # --- a user -----------------------------------------------------------------------------

    def user_client(
        self, username: str = "alice", password: str = "a-long-pass-123"
    ) -> httpx.Client:
        client = httpx.Client(base_url=self.url, timeout=60)
        page = client.get("/accounts/signup/")
        client.post(
            "/accounts/signup/",
            data={
                "username": username,
                "password1": password,
                "password2": password,
                "csrfmiddlewaretoken": _csrf(page.text),
            },
        )
        if client.get("/", follow_redirects=False).status_code != 200:  # already exists
            page = client.get("/accounts/login/")
            client.post(
                "/accounts/login/",
                data={
                    "username": username,
                    "password": password,
                    "csrfmiddlewaretoken": _csrf(page.text),
                },
            )
        return client

    def generate(self, client: httpx.Client, video: Path, **fields: str) -> str:
        """POST the Generate form; return the new run's code."""
        page = client.get("/")
        data = {
            "prompt": "@Video1 at golden hour",
            "duration": "3",
            "aspect_ratio": "auto",
            "idempotency_key": re.search(
                r'name="idempotency_key" value="([^"]+)"', page.text
            ).group(1),
            "csrfmiddlewaretoken": _csrf(page.text),
            **fields,
        }
        with video.open("rb") as fh:
            response = client.post(
                "/", data=data, files={"reference_video": (video.name, fh, "video/mp4")}
            )
        assert response.status_code == 302, response.text[:2000]
        return response.headers["location"].rstrip("/").split("/")[-1]


def _csrf(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)

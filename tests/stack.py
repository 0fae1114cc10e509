"""The real thing in separate processes: gunicorn serving the app (with the simulator), a
django-q2 `qcluster` and the previews' own qcluster, on a throwaway VAR_DIR and a free
loopback port.

Used by the tests that kill workers and by the browser test. The test process reads the
stack's database directly (SQLite, or PostgreSQL when DATABASE_URL names one) and drives it
over HTTP like a user would.

On the real engines (tests/postgres.py: DATABASE_URL, REDIS_URL, MEDIA_S3_*) a stack gets a
database, a Redis database and a bucket of its own on those servers (tests/services.py).
`Stack(root, share_with=first)` is a second instance of the same deployment: its own web
and worker processes on the first one's database, queue, media, simulator and SECRET_KEY,
as two machines behind one address would be.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
from django.test import override_settings

from playground.runs.management.commands.serve import process_commands, split_env
from playground.simulator import store
from tests.services import free_port, is_postgres, own_services

ROOT = Path(__file__).resolve().parent.parent


def wait_for(check: Callable[[], Any], timeout: float = 30.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := check():
            return value
        time.sleep(every)
    raise TimeoutError(f"gave up after {timeout} s waiting for {check}")


class Row(tuple[Any, ...]):
    """A row read by number or by column name, as sqlite3.Row is, whichever the engine."""

    names: tuple[str, ...]

    def __new__(cls, names: Sequence[str], values: Sequence[Any]) -> Row:
        row = super().__new__(cls, values)
        row.names = tuple(names)
        return row

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            return super().__getitem__(self.names.index(key))
        return super().__getitem__(key)

    def keys(self) -> list[str]:
        return list(self.names)


class Stack:
    def __init__(
        self,
        root: Path,
        *,
        web_workers: int = 1,
        share_with: Stack | None = None,
        **env: str,
    ) -> None:
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
        self._services = ExitStack()
        self.joined: list[Stack] = []
        if share_with is None:
            self.owner = self
            # What every instance of this deployment shares.
            self.shared = {
                "DATABASE_URL": f"sqlite:///{self.var / 'db.sqlite3'}",
                "MEDIA_ROOT": str(self.var / "media"),
                "SIMULATOR_ROOT": str(self.var / "simulator"),
                "SECRET_KEY": self.env["SECRET_KEY"],
                **self._services.enter_context(own_services(self.env)),
            }
        else:
            self.owner = share_with
            share_with.joined.append(self)
            # One gateway (the first instance's simulator) and one public address, as a
            # load balancer would give: the simulator fetches only its own deployment's
            # signed references and posts webhooks to that address.
            self.shared = {
                **share_with.shared,
                "AIGATEWAY_BASE_URL": share_with.url + "/sim",
                "PUBLIC_BASE_URL": share_with.url,
            }
        self.env.update(self.shared)
        self.database_url = self.shared["DATABASE_URL"]
        self.simulator_root = Path(self.shared["SIMULATOR_ROOT"])
        self.media_root = Path(self.shared["MEDIA_ROOT"])
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

    def start(self, *, worker: bool = True, previews: bool = True) -> Stack:
        try:
            if self.owner is self:  # a second instance finds the deployment set up
                self.manage("migrate", "--noinput")
                self.manage("collectstatic", "--noinput", "--verbosity", "0")
            self.start_web()
            if worker:
                self.start_worker()
            if previews:
                self.start_previews()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, cmd: list[str], host: str = "") -> subprocess.Popen[bytes]:
        extra_env, cmd = split_env(cmd)
        if host:  # a host name of its own (a UTS namespace); exec keeps the pid
            cmd = ["unshare", "--uts", "sh", "-c", f'hostname {host} && exec "$@"', "-", *cmd]
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

    def start_worker(self, *, host: str = "") -> None:
        """The main cluster's qcluster; with `host`, as if on another machine (root only,
        see can_rename_host): trackers then know it only by its heartbeat and its claims."""
        command = process_commands(python=sys.executable)["worker"]
        self.worker = self._spawn("worker", command, host=host)

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
        """Stop this instance's processes (and, for the first, every instance's), then give
        the deployment's database back."""
        for other in self.joined:
            other.stop()
        running = [p for p in (self.worker, self.previews, self.web) if p and p.poll() is None]
        for process in running:
            os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 3  # every step is crash-safe: no need to wait long
        for process in running:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        self._services.close()

    # --- what the stack knows -------------------------------------------------------------

    def query(self, sql: str, *params: Any) -> list[Row]:
        return query(self.database_url, sql, *params)

    def run(self, code: str) -> Row:
        return self.query("SELECT * FROM runs_run WHERE code = ?", code.replace("-", ""))[0]

    def simulator_jobs(self) -> list[str]:
        return sorted(p.stem for p in (self.simulator_root / "jobs").glob("job_*.json"))

    def add_fault(self, **fault: Any) -> None:
        with override_settings(SIMULATOR_ROOT=self.simulator_root):
            store.add_fault(**fault)

    # --- a user -----------------------------------------------------------------------------

    def user_client(
        self, username: str = "alice", password: str = "a-long-pass-123"
    ) -> httpx.Client:
        return user_client(self.url, username, password)

    def generate(self, client: httpx.Client, video: Path | None, **fields: str) -> str:
        return generate(client, video, **fields)


def user_client(
    url: str, username: str = "alice", password: str = "a-long-pass-123"
) -> httpx.Client:
    """A client signed in to the instance at `url`: signed up, or logged in if the user exists."""
    client = httpx.Client(base_url=url, timeout=60)
    _submit(client, "/accounts/signup/", username=username, password1=password, password2=password)
    if client.get("/", follow_redirects=False).status_code != 200:  # already exists
        _submit(client, "/accounts/login/", username=username, password=password)
    return client


def generate(client: httpx.Client, video: Path | None, **fields: str) -> str:
    """POST the Generate form, uploading `video` (None: `fields` name a `reference`
    uploaded before); return the new run's code."""
    page = client.get("/")
    data = {
        "prompt": "@Video1 at golden hour",
        "duration": "3",
        "aspect_ratio": "auto",
        "idempotency_key": re.search(r'name="idempotency_key" value="([^"]+)"', page.text).group(1),
        "csrfmiddlewaretoken": _csrf(page.text),
        **fields,
    }
    if video is None:
        response = client.post("/", data=data)
    else:
        with video.open("rb") as fh:
            response = client.post(
                "/", data=data, files={"reference_video": (video.name, fh, "video/mp4")}
            )
    assert response.status_code == 302, response.text[:2000]
    return response.headers["location"].rstrip("/").split("/")[-1]


def query(database_url: str, sql: str, *params: Any) -> list[Row]:
    """Rows of `sql` (with `?` placeholders, as sqlite3 takes them) on either engine;
    UUIDs compare as 32 hex digits on both (how Django stores them on SQLite)."""
    if is_postgres(database_url):
        import psycopg

        # psycopg's placeholders are %s, so a literal % is written %%.
        with psycopg.connect(database_url, autocommit=True) as db:
            cursor = db.execute(sql.replace("%", "%%").replace("?", "%s"), params)
            names = [column.name for column in cursor.description or ()]
            return [Row(names, values) for values in cursor.fetchall()]
    db = sqlite3.connect(database_url.removeprefix("sqlite:///"), timeout=30)
    try:
        cursor = db.execute(sql, params)
        names = [column[0] for column in cursor.description or ()]
        return [Row(names, values) for values in cursor.fetchall()]
    finally:
        db.close()


def can_rename_host() -> bool:
    """Whether a process started here can have a host name of its own (a UTS namespace)."""
    try:
        return subprocess.run(["unshare", "--uts", "true"], capture_output=True).returncode == 0
    except OSError:
        return False


def _submit(client: httpx.Client, path: str, **fields: str) -> httpx.Response:
    """POST the form at `path` as a browser does: its page first, for the CSRF token."""
    page = client.get(path)
    return client.post(path, data={**fields, "csrfmiddlewaretoken": _csrf(page.text)})


def _csrf(html: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)

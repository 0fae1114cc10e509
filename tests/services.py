"""The real servers tests run against, each started in a temporary folder on a free loopback
port and stopped and removed afterwards whatever happens.

- `postgres()`: Debian's PostgreSQL (the `postgresql` package; `make test` installs it),
  yielding a DATABASE_URL;
- `redis_server()`: Debian's `redis-server`, yielding a REDIS_URL;
- `own_services(env)`: for one deployment of real processes (tests/stack.py), a database,
  a Redis database and a bucket of its own on the servers `env` names, so deployments
  started side by side (xdist workers) never see each other's rows, tasks or files.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
# Redis databases: 0 holds the counter below, 1–15 the test processes (tests/settings.py),
# the rest are handed to deployments in turn.
REDIS_DATABASES = 256
FIRST_DEPLOYMENT_DB = 16


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


# --- PostgreSQL -----------------------------------------------------------------------------


def pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


@contextmanager
def postgres() -> Iterator[str]:
    """A running server with fsync off (a test server's data is thrown away anyway);
    yields its DATABASE_URL. pytest-django makes its test databases beside `playground`."""
    bin_dir = pg_bin()
    if bin_dir is None:
        raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
    folder = Path(tempfile.mkdtemp(prefix="playground-pg-"))
    data = folder / "data"
    port = free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses root
        user = pwd.getpwnam("nobody")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "nobody", "--"]

    def run(*cmd: str) -> None:
        subprocess.run([*as_user, *cmd], check=True, capture_output=True)

    try:
        run(
            str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"
        )
        # Enough connections for two deployments of real processes beside the test workers.
        run(
            str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"), "-w",
            "-o", f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=400",
            "start",
        )  # fmt: skip
        yield f"postgres://postgres@127.0.0.1:{port}/playground"
    finally:
        subprocess.run(
            [*as_user, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


def is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://"))


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + path))


def create_database(url: str) -> str:
    """A new, empty database on the server of `url`; returns its URL."""
    import psycopg

    name = f"stack_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_with_path(url, "postgres"), autocommit=True) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    return _with_path(url, name)


def drop_database(url: str) -> None:
    import psycopg

    name = urlsplit(url).path.lstrip("/")
    with psycopg.connect(_with_path(url, "postgres"), autocommit=True) as db:
        # FORCE: a process killed mid-test may leave a session behind for a moment.
        db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# --- Redis ----------------------------------------------------------------------------------


@contextmanager
def redis_server() -> Iterator[str]:
    """A running redis-server that keeps nothing on disk; yields its REDIS_URL (db 0)."""
    if not Path(REDIS).exists():
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    folder = Path(tempfile.mkdtemp(prefix="playground-redis-"))
    port = free_port()
    command = [
        REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
        "--appendonly", "no", "--dir", str(folder), "--databases", str(REDIS_DATABASES),
    ]  # fmt: skip
    server = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while not _accepts(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start (exit status {server.poll()})")
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        shutil.rmtree(folder, ignore_errors=True)


def redis_db(url: str, db: int) -> str:
    return _with_path(url, str(db))


def claim_redis_db(url: str) -> str:
    """A Redis database no other live deployment uses: django-q2's queue is a key named
    after the cluster, so two deployments on one database would take each other's tasks."""
    import redis

    client = redis.Redis.from_url(redis_db(url, 0))
    try:
        count = client.incr("tests:deployments")
        span = REDIS_DATABASES - FIRST_DEPLOYMENT_DB
        db = FIRST_DEPLOYMENT_DB + (count - 1) % span
        redis.Redis.from_url(redis_db(url, db)).flushdb()  # a previous user's leftovers
    finally:
        client.close()
    return redis_db(url, db)


# --- One deployment's share of them -----------------------------------------------------------


@contextmanager
def own_services(env: Mapping[str, str]) -> Iterator[dict[str, str]]:
    """Environment overrides giving one deployment its own database, Redis database and
    bucket on the servers `env` points at (nothing on SQLite, local files, the ORM broker:
    a deployment's VAR_DIR is its own already). The database is dropped afterwards."""
    overrides: dict[str, str] = {}
    database = env.get("DATABASE_URL", "")
    if is_postgres(database):
        overrides["DATABASE_URL"] = create_database(database)
    if env.get("REDIS_URL"):
        overrides["REDIS_URL"] = claim_redis_db(env["REDIS_URL"])
    if env.get("MEDIA_S3_BUCKET"):
        from tests.s3 import create_bucket  # moto's server (tests/postgres.py started it)

        overrides["MEDIA_S3_BUCKET"] = create_bucket(env)
    try:
        yield overrides
    finally:
        if "DATABASE_URL" in overrides:
            drop_database(overrides["DATABASE_URL"])

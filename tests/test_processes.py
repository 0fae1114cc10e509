"""The processes: the Procfile and `make run` agree, `make run` leaves nothing behind however
it ends, previews have a queue of their own, and the web process refuses hostile requests
and keeps request headers out of its access log."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django_q.brokers import get_broker
from django_q.conf import Conf
from django_q.signing import SignedPackage
from gunicorn.config import Config

from playground.runs import previews
from playground.runs.management.commands.serve import process_commands, split_env
from tests.builders import make_reference, make_user
from tests.services import is_postgres, own_services
from tests.stack import free_port, generate, query, user_client, wait_for

ROOT = Path(__file__).resolve().parent.parent
HEADER_ATOMS = {"a", "f", "u"}  # User-Agent, Referer, the Basic-auth user


def procfile() -> dict[str, list[str]]:
    text = (ROOT / "Procfile").read_text()
    return {
        name: shlex.split(command)
        for name, command in re.findall(r"^([A-Za-z0-9_-]+):\s*(.+)$", text, re.MULTILINE)
    }


def test_it_runs_what_the_procfile_says():
    assert procfile() == process_commands()
    assert list(procfile()) == ["web", "worker", "previews"]


def test_it_refuses_hostile_requests_and_logs_no_request_headers():
    web = process_commands(web_workers="2")["web"]
    assert web[:3] == ["python", "-m", "gunicorn"]
    options = Config().parser().parse_args(web[3:])  # gunicorn's own reading of them
    assert options.limit_request_line == 4094
    assert options.limit_request_fields == 100
    assert options.limit_request_field_size == 8190
    assert options.accesslog == "-"
    atoms = re.findall(r"%\(([^)]+)\)s", options.access_log_format)
    assert "r" in atoms and "s" in atoms
    assert not HEADER_ATOMS & set(atoms), atoms
    assert not [atom for atom in atoms if atom.endswith("}i")], atoms


# --- previews on their own cluster ------------------------------------------------------


@pytest.fixture
def queued_for_real(monkeypatch):
    """Tasks go to the broker as in production, not run at once as tests otherwise do."""
    monkeypatch.setattr(Conf, "SYNC", False)


@pytest.mark.django_db
def test_it_queues_previews_on_their_own_cluster(
    queued_for_real, django_capture_on_commit_callbacks
):
    reference = make_reference(make_user(), codec="hevc")
    with django_capture_on_commit_callbacks(execute=True):
        previews.schedule_preview(reference)
    # On either broker (the ORM's, or Redis with REDIS_URL): one task, on the previews queue.
    main = get_broker()
    assert (main.queue_size(), get_broker(previews.CLUSTER).queue_size()) == (0, 1)
    time.sleep(0.01)  # the ORM broker hands out tasks locked before now

    # What the main cluster's pusher asks its broker for: nothing.
    assert Conf.CLUSTER_NAME == settings.Q_CLUSTER["name"] == "playground"
    assert main.list_key in {"playground", "django_q:playground:q"}
    assert not main.dequeue()
    # What the previews cluster's pusher asks for: the transcode.
    [(_, payload)] = get_broker(previews.CLUSTER).dequeue()
    task = SignedPackage.loads(payload)
    assert task["func"] == "playground.runs.previews.make_preview"
    assert task["args"] == (reference.pk,)
    # And the previews cluster is configured: one worker, long enough for a 4K clip.
    alt = settings.Q_CLUSTER["ALT_CLUSTERS"][previews.CLUSTER]
    assert alt["workers"] == 1 and alt["timeout"] < alt["retry"]


# --- `make run` and its processes -------------------------------------------------------


class MakeRun:
    """`make run` in a session of its own, as a terminal would start it, on a throwaway
    VAR_DIR whose path marks every process it starts (in /proc/<pid>/environ)."""

    def __init__(self, var: Path, services: dict[str, str]) -> None:
        self.var = var
        self.port = free_port()
        self.output = var / "make-run.log"
        self.marker = f"VAR_DIR={var}".encode()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIGATEWAY_", "Q_"))}
        env.update(
            DJANGO_SETTINGS_MODULE="playground.settings",
            VAR_DIR=str(var),
            PORT=str(self.port),
            SECRET_KEY="processes-test-secret-key-not-for-production",
            WEB_WORKERS="1",
            Q_WORKERS="1",
            **services,
        )
        # `-o`: never reinstall the venv here, even if pyproject.toml is newer than it.
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "-o", ".venv/.installed", "run"],
            cwd=ROOT,
            env=env,
            stdout=self.output.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log(self) -> str:
        return self.output.read_text(errors="replace")

    def wait_until_up(self) -> None:
        def up() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"make run ended early:\n{self.log()}")
            # A cluster names its queue: `[playground]`, or `[django_q:playground:q]` on Redis.
            running = set(re.findall(r"\[(?:django_q:)?(\w+)(?::q)?\] running\.", self.log()))
            if not {"playground", "previews"} <= running:
                return False
            try:
                return httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_for(up, timeout=60, every=0.1)
        except TimeoutError:
            raise AssertionError(f"make run never came up:\n{self.log()}") from None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        """Every live process started by this `make run`."""
        found = []
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                try:
                    if self.marker in (proc / "environ").read_bytes().split(b"\0"):
                        found.append(int(proc.name))
                except OSError:
                    pass  # gone, or a zombie
        return found

    def port_free(self) -> bool:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
            try:
                sock.bind(("127.0.0.1", self.port))
            except OSError:
                return False
            return True

    def seconds_until_gone(self, since: float, timeout: float = 10) -> float:
        """How long after `since` (monotonic) nothing of it was left: no process, port free."""
        start = since
        while self.pids() or not self.port_free():
            if time.monotonic() - start > timeout:
                left = {pid: cmdline(pid) for pid in self.pids()}
                raise AssertionError(f"left behind after {timeout} s: {left}\n{self.log()}")
            time.sleep(0.05)
        return time.monotonic() - start

    def kill(self) -> None:
        for pid in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(timeout=10)


def cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")[:-1]
    except OSError:
        return []


def environ(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")


@pytest.fixture(scope="module")
def services() -> Iterator[dict[str, str]]:
    """On the real engines (tests/postgres.py), a database, Redis database and bucket of
    this module's own, which the `make run`s below use one after another."""
    with own_services(os.environ) as overrides:
        yield overrides


@pytest.fixture(scope="module")
def migrated_var(tmp_path_factory: pytest.TempPathFactory, services: dict[str, str]) -> Path:
    """A VAR_DIR (and database) migrated once, so each `make run` below finds nothing to apply."""
    var = tmp_path_factory.mktemp("migrated") / "var"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "playground.settings", "VAR_DIR": str(var)}
    env["SECRET_KEY"] = "processes-test-secret-key-not-for-production"
    env.update(services)
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    return var


@pytest.fixture
def make_run_up(migrated_var: Path, services: dict[str, str], tmp_path: Path):
    running = MakeRun(_copy(migrated_var, tmp_path / f"var-{uuid.uuid4().hex[:8]}"), services)
    try:
        running.wait_until_up()
        yield running
    finally:
        running.kill()


def serve_pid(running: MakeRun) -> int:
    [pid] = [pid for pid in running.pids() if cmdline(pid)[-2:] == ["manage.py", "serve"]]
    return pid


@pytest.mark.stack
def test_it_runs_the_three_processes_in_our_process_group(make_run_up):
    serve = serve_pid(make_run_up)
    children = [pid for pid in make_run_up.pids() if _ppid(pid) == serve]
    expected = process_commands(
        python=sys.executable, bind=f"127.0.0.1:{make_run_up.port}", web_workers="1"
    )
    started = sorted(cmdline(pid)[1:] for pid in children)
    assert started == sorted(split_env(command)[1][1:] for command in expected.values())
    [previews_pid] = [pid for pid in children if "Q_CLUSTER_NAME=previews" in environ(pid)]
    assert cmdline(previews_pid)[1:] == ["manage.py", "qcluster"]
    group = os.getpgid(make_run_up.process.pid)
    assert {os.getpgid(pid) for pid in make_run_up.pids()} == {group}


def _ppid(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


@pytest.mark.stack
@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGHUP], ids=["SIGKILL", "SIGHUP"])
def test_it_leaves_nothing_behind_when_make_run_is_killed_or_its_terminal_closes(
    make_run_up, signum
):
    start = time.monotonic()
    os.killpg(make_run_up.process.pid, signum)
    took = make_run_up.seconds_until_gone(start, timeout=10)
    print(f"{signal.Signals(signum).name} to make run's group: all gone in {took:.2f} s")


@pytest.mark.stack
def test_it_leaves_nothing_behind_when_only_the_serve_process_is_killed(make_run_up):
    """What a Procfile runner or a supervisor may do: kill -9 the parent alone. The
    parent-death signal stops its children anyway."""
    serve = serve_pid(make_run_up)
    start = time.monotonic()
    os.kill(serve, signal.SIGKILL)
    took = make_run_up.seconds_until_gone(start, timeout=10)
    print(f"SIGKILL to serve alone: all gone in {took:.2f} s")


@pytest.mark.stack
def test_ctrl_c_stops_everything_cleanly(make_run_up):
    marker = uuid.uuid4().hex
    answer = httpx.get(
        f"{make_run_up.url}/healthz?probe=1",
        headers={"User-Agent": f"agent-{marker}", "Referer": f"http://referer-{marker}/"},
    )
    assert answer.status_code == 200
    # gunicorn's limits: a long request line, too many or too large header fields.
    status = partial(_raw_status, make_run_up.port)
    assert status(f"GET /{'x' * 4095} HTTP/1.1\r\n\r\n") == 414
    assert status("GET /healthz HTTP/1.1\r\n" + _fields(101, 1) + "\r\n") == 431
    assert status("GET /healthz HTTP/1.1\r\n" + _fields(1, 8191) + "\r\n") == 431
    within = f"GET /healthz?{'q' * 3900} HTTP/1.1\r\nHost: 127.0.0.1\r\n{_fields(90, 8000)}\r\n"
    assert status(within) == 200

    start = time.monotonic()
    os.killpg(make_run_up.process.pid, signal.SIGINT)
    # make waits for serve (the recipe execs it), then ends itself with the signal it got.
    assert make_run_up.process.wait(timeout=15) in (0, -signal.SIGINT)
    ended = time.monotonic()
    print(f"Ctrl-C to make run's group: make ended after {ended - start:.2f} s")
    make_run_up.seconds_until_gone(ended, timeout=1)  # and nothing outlived it
    log = make_run_up.log()
    assert "Stopped." in log and "Traceback" not in log, log
    clusters = re.findall(r"Q Cluster (\S+) \[(?:django_q:)?(\w+)(?::q)?\] running\.", log)
    assert sorted(queue for _, queue in clusters) == ["playground", "previews"], log
    for name, _ in clusters:
        assert f"Q Cluster {name} has stopped." in log, log  # gracefully, not killed
    assert '"GET /healthz?probe=1 HTTP/1.1" 200' in log, log
    assert marker not in log, "a request header reached the access log"


@pytest.mark.stack
@pytest.mark.skipif(
    not (is_postgres(os.environ.get("DATABASE_URL", "")) and os.environ.get("MEDIA_S3_BUCKET")),
    reason="one deployment needs a shared database and bucket (tests/postgres.py)",
)
def test_two_make_runs_on_one_database_queue_and_bucket_are_one_deployment(
    migrated_var, services, tmp_path, good_video
):
    """Two `make run`s on two ports, standing in for two machines: the second uses the
    first's simulator as its gateway, as both would use AIgateway. Either serves any
    user's pages and files, and their workers share the tracking."""
    first = MakeRun(_copy(migrated_var, tmp_path / "first"), services)
    second = MakeRun(
        _copy(migrated_var, tmp_path / "second"),
        {
            **services,
            "AIGATEWAY_BASE_URL": f"{first.url}/sim",
            "PUBLIC_BASE_URL": first.url,
        },
    )
    try:
        first.wait_until_up()
        second.wait_until_up()
        # One account, whichever machine it signs up on or logs in to.
        on_first, on_second = user_client(first.url, "ada"), user_client(second.url, "ada")
        uploaded = generate(on_second, good_video)
        database = services["DATABASE_URL"]
        [reference] = query(
            database,
            "SELECT f.code FROM runs_reference f JOIN runs_run r ON r.reference_id = f.id "
            "WHERE r.code = ?",
            uploaded.replace("-", ""),
        )
        codes = [uploaded] + [
            generate(client, None, reference=str(reference["code"]), prompt=f"@Video1 take {n}")
            for n, client in enumerate([on_first, on_second] * 4)
        ]

        def all_done() -> bool:
            rows = query(database, "SELECT status FROM runs_run")
            return len(rows) == len(codes) and {row["status"] for row in rows} == {"completed"}

        wait_for(all_done, timeout=90, every=0.5)
        # Both workers did part of it (the module's earlier `make run`s left rows too).
        ours = set(first.pids()) | set(second.pids())
        steps = [
            row["steps"]
            for row in query(database, "SELECT holder, steps FROM runs_tracker")
            if int(row["holder"].split(":")[1]) in ours
        ]
        assert len(steps) == 2 and min(steps) > 0, steps

        for code in codes:
            served = [
                client.get(f"/runs/{code}/result.mp4", follow_redirects=True)
                for client in (on_first, on_second)
            ]
            assert [answer.status_code for answer in served] == [200, 200]
            assert served[0].content == served[1].content and len(served[0].content) > 1000
            for client in (on_first, on_second):
                assert client.get(f"/runs/{code}/").status_code == 200
        stranger = user_client(first.url, "bo")
        assert stranger.get(f"/runs/{codes[0]}/result.mp4").status_code == 404
    finally:
        first.kill()
        second.kill()


def _copy(migrated_var: Path, where: Path) -> Path:
    var = where / "var"
    shutil.copytree(migrated_var, var)
    return var


def _fields(count: int, size: int) -> str:
    """`count` header fields of `size` bytes each (name, colon, space and value)."""
    return "".join(f"X-{n:04}: {'v' * (size - 8)}\r\n" for n in range(count))


def _raw_status(port: int, request: str) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request.encode())
        head = sock.recv(200).decode(errors="replace")
    return int(head.split()[1])

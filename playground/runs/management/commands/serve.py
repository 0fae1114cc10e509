"""`make run`: the web app and its django-q2 workers together, stopped together.

The processes are the Procfile's (web, worker, previews), built by `process_commands`;
tests/test_processes.py checks that the Procfile says the same thing.

Nothing outlives `make run`. The children stay in our process group, so Ctrl-C, a closing
terminal (SIGHUP) and a `kill -9` of the group reach every one of them, and on Linux each
also gets SIGTERM when this process dies (PR_SET_PDEATHSIG): a Procfile runner or a
supervisor that kills only us leaves nothing holding the port or claims on runs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
STOP_SECONDS = 8  # then SIGKILL: every task is crash-safe
# Gunicorn's access log: no request headers (no Referer, User-Agent or Basic-auth user).
ACCESS_LOG_FORMAT = '%(h)s %(t)s "%(r)s" %(s)s %(b)s %(M)sms'


def process_commands(
    *, python: str = "python", bind: str = "0.0.0.0:$PORT", web_workers: str = "${WEB_WORKERS:-2}"
) -> dict[str, list[str]]:
    """The processes the app runs as, as words of a Procfile line (leading NAME=value words
    are the command's environment). With the defaults, exactly the Procfile's lines;
    `serve` runs the same three with its own python, address and worker count."""
    qcluster = [python, "manage.py", "qcluster"]
    return {
        "web": [
            python,
            "-m",
            "gunicorn",
            "playground.wsgi:application",
            "--bind",
            bind,
            "--workers",
            web_workers,
            "--worker-class",
            "gthread",
            "--threads",
            "16",
            "--timeout",
            "300",
            # Hostile requests: gunicorn's defaults, stated so they are never lost.
            "--limit-request-line",
            "4094",
            "--limit-request-fields",
            "100",
            "--limit-request-field_size",
            "8190",
            "--access-logfile",
            "-",
            "--access-logformat",
            ACCESS_LOG_FORMAT,
            "--log-level",
            "warning",
        ],
        "worker": qcluster,  # the tracker and everything else
        # Preview transcodes on a queue of their own (settings.Q_CLUSTER's ALT_CLUSTERS),
        # so a burst of uploads never delays the tracking of paid jobs.
        "previews": ["Q_CLUSTER_NAME=previews", *qcluster],
    }


def split_env(command: list[str]) -> tuple[dict[str, str], list[str]]:
    """`["A=1", "cmd", …]` → `({"A": "1"}, ["cmd", …])`, as a shell reads a Procfile line."""
    env: dict[str, str] = {}
    words = list(command)
    while words and "=" in words[0] and words[0].split("=", 1)[0].isidentifier():
        name, value = words.pop(0).split("=", 1)
        env[name] = value
    return env, words


def die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn that makes the child get SIGTERM when we die (Linux); None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # we died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (from /proc; none where there is no /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


class Command(BaseCommand):
    help = "Serve the web app (gunicorn) and run the django-q2 workers until interrupted."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument(
            "--web-workers", type=int, default=int(os.environ.get("WEB_WORKERS", "2"))
        )

    def handle(
        self, *args: object, host: str, port: int, web_workers: int, **options: object
    ) -> None:
        commands = process_commands(
            python=sys.executable, bind=f"{host}:{port}", web_workers=str(web_workers)
        )
        url = f"http://{host}:{port}/"
        self.stdout.write(self.style.SUCCESS(f"\n  Playground: {url}"))
        self.stdout.write(
            f"  Accounts:   sign up at {url}accounts/signup/"
            if settings.SIGNUP_ENABLED
            else "  Accounts:   sign-up is off; invite someone with: .venv/bin/python manage.py "
            "invite EMAIL"
        )
        self.stdout.write(
            "  Gateway:    built-in simulator (set AIGATEWAY_API_KEY for the real AIgateway)"
            if settings.SIMULATOR_ENABLED
            else f"  Gateway:    {settings.AIGATEWAY_BASE_URL}"
        )
        self.stdout.write("  Stop:       Ctrl-C\n")
        self.stdout.flush()

        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        # A closing terminal (SIGHUP) stops us like Ctrl-C or SIGTERM. Set before the
        # children start, so a signal during start-up is never a traceback. The group's
        # SIGHUP also reaches the children: the qclusters die of it, gunicorn's workers too,
        # and its master takes it as "reload" and starts fresh workers, which our SIGTERM
        # then stops (all gone in about a second; tests/test_processes.py).
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, stop)
        preexec = die_with_parent()
        processes: list[subprocess.Popen[bytes]] = []
        try:
            for command in commands.values():
                extra_env, argv = split_env(command)
                env = {**os.environ, "PORT": str(port), **extra_env}
                # Same process group as ours (no new session): whatever reaches the
                # group reaches them.
                processes.append(subprocess.Popen(argv, env=env, preexec_fn=preexec))
            while not stopping and all(p.poll() is None for p in processes):
                time.sleep(0.3)
        finally:
            self._stop(processes)
        failed = [p.returncode for p in processes if p.returncode not in (0, -15)]
        if failed and not stopping:
            sys.exit(1)

    def _stop(self, processes: list[subprocess.Popen[bytes]]) -> None:
        """SIGTERM each child (gunicorn and qcluster stop their own), SIGKILL what is left."""
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_SECONDS
        for process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                # A tracker slice runs up to a minute; its cluster's processes go with it.
                for pid in [*descendants(process.pid), process.pid]:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                process.wait()
        self.stdout.write("Stopped.")

"""`make run`: the web app and the django-q2 worker together, stopped together by Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve the web app (gunicorn) and run the django-q2 worker until interrupted."

    def add_arguments(self, parser) -> None:  # type: ignore[no-untyped-def]
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=settings.PORT)
        parser.add_argument(
            "--web-workers", type=int, default=int(os.environ.get("WEB_WORKERS", "2"))
        )

    def handle(
        self, *args: object, host: str, port: int, web_workers: int, **options: object
    ) -> None:
        env = {**os.environ, "PORT": str(port)}
        python = sys.executable
        web = [
            python,
            "-m",
            "gunicorn",
            "playground.wsgi:application",
            "--bind",
            f"{host}:{port}",
            "--workers",
            str(web_workers),
            "--worker-class",
            "gthread",
            "--threads",
            "16",
            "--timeout",
            "300",
            "--access-logfile",
            "-",
            "--log-level",
            "warning",
        ]
        worker = [python, "manage.py", "qcluster"]
        url = f"http://{host}:{port}/"
        self.stdout.write(self.style.SUCCESS(f"\n  Playground: {url}"))
        self.stdout.write(
            f"  Accounts:   sign up at {url}accounts/signup/"
            if settings.SIGNUP_ENABLED
            else "  Accounts:   sign-up is off; create one with: .venv/bin/python manage.py "
            "createsuperuser"
        )
        self.stdout.write(
            "  Gateway:    built-in simulator (set AIGATEWAY_API_KEY for the real AIgateway)"
            if settings.SIMULATOR_ENABLED
            else f"  Gateway:    {settings.AIGATEWAY_BASE_URL}"
        )
        self.stdout.write("  Stop:       Ctrl-C\n")
        processes = [
            subprocess.Popen(cmd, env=env, start_new_session=True) for cmd in (web, worker)
        ]
        stopping = False

        def stop(signum: int, frame: object) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            while not stopping and all(p.poll() is None for p in processes):
                time.sleep(0.3)
        finally:
            for process in processes:
                if process.poll() is None:
                    os.killpg(process.pid, signal.SIGTERM)
            deadline = time.monotonic() + 8  # every task is crash-safe
            for process in processes:
                try:
                    process.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
            self.stdout.write("Stopped.")
        failed = [p.returncode for p in processes if p.returncode not in (0, -15, None)]
        if failed and not stopping:
            sys.exit(1)

#!/usr/bin/env python
"""How much does the web worker's memory grow while it takes a 200 MB upload?

    .venv/bin/python bench/upload_memory.py [--mb 200]

Starts gunicorn (one worker) as `make run` does, logs in, streams a file of the given size
to the Generate form, and samples the worker's resident memory (VmRSS) every 20 ms. Django
streams uploads over FILE_UPLOAD_MAX_MEMORY_SIZE to a temporary file, so the growth should
stay far below the file's size (goal: under 50 MB for 200 MB).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args()
    from tests.stack import Stack

    stack = Stack(Path(tempfile.mkdtemp(prefix="playground-upload-")))
    stack.manage("migrate", "--noinput")
    stack.manage("collectstatic", "--noinput", "--verbosity", "0")
    stack.start_web()
    try:
        client = stack.user_client()
        page = client.get("/")
        pid = worker_pid(stack.web.pid)
        client.get("/")  # warm up
        before = rss_kib(pid)
        peak = before
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_kib(pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample)
        sampler.start()
        size = args.mb * 1024 * 1024 - 4096  # just inside the 200 MB limit
        # A real file, so the client sends a Content-Length as browsers do.
        big = stack.root / "big.mp4"
        with big.open("wb") as fh:
            for _ in range(size // (1024 * 1024)):
                fh.write(os.urandom(1024 * 1024))
            fh.write(os.urandom(size % (1024 * 1024)))
        started = time.monotonic()
        response = client.post(
            "/",
            data={
                "prompt": "memory check",
                "duration": "5",
                "aspect_ratio": "auto",
                "idempotency_key": re.search(
                    r'name="idempotency_key" value="([^"]+)"', page.text
                ).group(1),
                "csrfmiddlewaretoken": re.search(
                    r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text
                ).group(1),
            },
            files={"reference_video": ("big.mp4", big.open("rb"), "video/mp4")},
        )
        elapsed = time.monotonic() - started
        done.set()
        sampler.join()
        assert response.status_code == 200, (response.status_code, response.text[:600])
        assert "can’t be used" in response.text  # random bytes: refused, and said why
        growth = (peak - before) / 1024
        print(
            f"Uploaded {size / 1024 / 1024:.0f} MB in {elapsed:.1f} s; web worker RSS "
            f"{before / 1024:.0f} MB before, peak {peak / 1024:.0f} MB: grew {growth:.1f} MB."
        )
    finally:
        stack.stop()


if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""How much does the web worker's memory grow while it takes a 200 MB upload?

    .venv/bin/python bench/upload_memory.py [--mb 200] [--valid] [--s3] [--cold]

Starts gunicorn (one worker) as `make run` does, logs in, streams a file of the given size
to the Generate form, and samples the worker's resident memory (VmRSS) every 20 ms. Django
streams uploads over FILE_UPLOAD_MAX_MEMORY_SIZE to a temporary file, so the growth should
stay far below the file's size (goal: under 50 MB for 200 MB).

By default the file is random bytes, refused after its probe. `--valid` sends a real clip
padded to the size (an MP4 `free` box: players and PyAV skip it), which is probed, kept
and stored; `--s3` (implies --valid) stores it in a bucket on a moto S3 server the script
starts (tests/s3.py), so the figure includes streaming the 200 MB to the bucket. With a
valid file a small upload goes first, so that what a process loads once (boto3's S3 client)
is not counted; `--cold` skips it, and the big upload is the fresh worker's first.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_kib(pid: int) -> int:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+)", status).group(1))


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


def padded_clip(path: Path, size: int) -> None:
    """A real clip inside the model's limits, padded to `size` bytes with a top-level MP4
    `free` box (32-bit box sizes reach 4 GB)."""
    from tests.videos import make_video

    clip = make_video(path.with_name("clip.mp4"), seconds=3.5)
    data = clip.read_bytes()
    padding = size - len(data)
    with path.open("wb") as fh:
        fh.write(data)
        fh.write(padding.to_bytes(4, "big") + b"free")
        left = padding - 8
        while left:
            chunk = min(left, 1024 * 1024)
            fh.write(b"\0" * chunk)
            left -= chunk


def upload(client: Any, path: Path) -> Any:
    """Post `path` to the Generate form, as a browser does."""
    page = client.get("/")
    with path.open("rb") as fh:
        return client.post(
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
            files={"reference_video": (path.name, fh, "video/mp4")},
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument("--valid", action="store_true", help="a real clip, kept and stored")
    parser.add_argument("--s3", action="store_true", help="store it in a (moto) S3 bucket")
    parser.add_argument("--cold", action="store_true", help="no small upload first")
    args = parser.parse_args()
    with ExitStack() as services:
        env: dict[str, str] = {}
        if args.s3:
            from tests.s3 import s3_server

            env = services.enter_context(s3_server())
        measure(args.mb, valid=args.valid or args.s3, cold=args.cold, env=env)


def measure(mb: int, *, valid: bool, cold: bool, env: dict[str, str]) -> None:
    from tests.stack import Stack

    stack = Stack(Path(tempfile.mkdtemp(prefix="playground-upload-")), **env)
    stack.manage("migrate", "--noinput")
    stack.manage("collectstatic", "--noinput", "--verbosity", "0")
    stack.start_web()
    try:
        client = stack.user_client()
        pid = worker_pid(stack.web.pid)
        client.get("/")  # warm up
        size = mb * 1024 * 1024 - 4096  # just inside the 200 MB limit
        # A real file, so the client sends a Content-Length as browsers do.
        big = stack.root / "big.mp4"
        if valid:
            # A first, small upload stores a file once, so what is loaded once per process
            # (boto3's S3 model and client, ~15 MB with a bucket) is not counted as the
            # upload's growth.
            if not cold:
                padded_clip(big, 3 * 1024 * 1024)
                assert upload(client, big).status_code == 302
            padded_clip(big, size)
        else:
            with big.open("wb") as fh:
                for _ in range(size // (1024 * 1024)):
                    fh.write(os.urandom(1024 * 1024))
                fh.write(os.urandom(size % (1024 * 1024)))
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
        started = time.monotonic()
        response = upload(client, big)
        elapsed = time.monotonic() - started
        done.set()
        sampler.join()
        if valid:  # kept: the run is made and the page follows
            assert response.status_code == 302, (response.status_code, response.text[:600])
        else:
            assert response.status_code == 200, (response.status_code, response.text[:600])
            assert "can’t be used" in response.text  # random bytes: refused, and said why
        growth = (peak - before) / 1024
        where = "an S3 bucket (moto)" if env else "local files"
        where += ", the worker's first upload" if cold else ""
        print(
            f"Uploaded {size / 1024 / 1024:.0f} MB ({'a real clip, kept' if valid else 'refused'}"
            f", to {where}) in {elapsed:.1f} s; web worker RSS {before / 1024:.0f} MB before, "
            f"peak {peak / 1024:.0f} MB: grew {growth:.1f} MB."
        )
    finally:
        stack.stop()


if __name__ == "__main__":
    main()

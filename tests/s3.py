"""A throwaway S3 server for tests: moto's server mode on a free loopback port.

    with s3_server() as env:  # MEDIA_S3_* for a new, empty bucket on it
        ...

moto (a dev dependency) keeps everything in the memory of its own process, so stopping it
removes every bucket. It takes any access key; the names here only have to be given.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

REGION = "us-east-1"


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


def client(env: Mapping[str, str]):  # type: ignore[no-untyped-def]
    """A boto3 S3 client for the server `env` names."""
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=env["MEDIA_S3_ENDPOINT_URL"],
        region_name=env["MEDIA_S3_REGION"],
        aws_access_key_id=env["MEDIA_S3_ACCESS_KEY_ID"],
        aws_secret_access_key=env["MEDIA_S3_SECRET_ACCESS_KEY"],
    )


def create_bucket(env: Mapping[str, str], name: str | None = None) -> str:
    """A new, empty bucket on the server `env` names; returns its name."""
    name = name or f"test-{uuid.uuid4().hex[:12]}"
    client(env).create_bucket(Bucket=name)  # us-east-1 takes no LocationConstraint
    return name


@contextmanager
def s3_server() -> Iterator[dict[str, str]]:
    """A running moto server with one empty bucket; yields the MEDIA_S3_* settings for it."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while not _accepts(port):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"moto did not start (exit status {server.poll()})")
            time.sleep(0.05)
        env = {
            "MEDIA_S3_ENDPOINT_URL": f"http://127.0.0.1:{port}",
            "MEDIA_S3_REGION": REGION,
            "MEDIA_S3_ACCESS_KEY_ID": "test-key",
            "MEDIA_S3_SECRET_ACCESS_KEY": "test-secret",
        }
        env["MEDIA_S3_BUCKET"] = create_bucket(env)
        yield env
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()

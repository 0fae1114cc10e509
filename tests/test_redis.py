"""REDIS_URL alone moves the task queue and the cache to a real Redis (Debian's
`redis-server`, which `make test` installs, started here on a free loopback port)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import REDIS, redis_server
from tests.stack import ROOT

# Run in a fresh interpreter: settings read the environment once, at start.
PROBE = """
import json, django
django.setup()
from django.conf import settings
from django.core.cache import cache
from django_q.brokers import get_broker
broker = get_broker()
broker.enqueue("a task package")
task = broker.dequeue()
cache.set("greeting", "hello", 30)
print(json.dumps({
    "broker": type(broker).__name__,
    "orm": "orm" in settings.Q_CLUSTER,
    "task": task[0][1].decode() if task else None,
    "cache": cache.get("greeting"),
    "ping": broker.ping(),
}))
"""


@pytest.fixture
def redis_url() -> Iterator[str]:
    """A server of this test's own (not the pass's REDIS_URL): the probe starts empty."""
    if not Path(REDIS).exists():
        pytest.skip("redis-server is not installed (make test installs it)")
    with redis_server() as url:
        yield url


def test_it_queues_tasks_and_caches_in_redis_given_redis_url(redis_url, tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "DJANGO_SETTINGS_MODULE": "playground.settings",
        "VAR_DIR": str(tmp_path / "var"),
        "REDIS_URL": redis_url,
    }
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-2000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result == {
        "broker": "Redis",
        "orm": False,
        "task": "a task package",
        "cache": "hello",
        "ping": True,
    }

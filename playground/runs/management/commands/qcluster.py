"""`manage.py qcluster`: django-q2's cluster, with this worker's tracker loop beside it.

The cluster starts as django-q2 starts it (a sentinel process and its task workers); then
this process, which django-q2 leaves waiting, runs the tracker (runs/tracker.py) until it
is told to stop (SIGTERM, SIGINT), and stops the cluster after it. So every worker of the
main cluster, on any number of machines, tracks runs; the previews cluster
(`Q_CLUSTER_NAME=previews`) only makes previews.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from django.conf import settings
from django.core.management import CommandError
from django_q.cluster import Cluster
from django_q.management.commands import qcluster

from playground.runs import tracker


class Command(qcluster.Command):
    help = "Starts a django-q2 cluster; a main-cluster worker also runs a tracker loop."

    def handle(self, *args: Any, **options: Any) -> None:
        settings.SECRET_KEY  # noqa: B018 (django-q2 signs tasks: fail early without it)
        if options.get("cluster_name"):
            os.environ["Q_CLUSTER_NAME"] = options["cluster_name"]
        cluster = Cluster()  # installs its SIGTERM/SIGINT handlers
        cluster.start()
        if options.get("run_once"):
            cluster.stop()
            return
        main = settings.Q_CLUSTER["name"]
        if os.environ.get("Q_CLUSTER_NAME", main) != main:
            return  # another queue's cluster (previews): django-q2 keeps it running
        stop, signalled = threading.Event(), threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, _stop_tracking(stop, signalled))
        sentinel = cluster.sentinel
        try:
            tracker.serve(stop, alive=lambda: sentinel is not None and sentinel.is_alive())
        finally:
            # After the tracker has finished its steps and handed its claims back (however
            # it ended): the cluster's sentinel is a child that would keep us alive.
            cluster.stop()
        if not signalled.is_set():
            # The sentinel died under us: exit non-zero, so a supervisor starts a new worker.
            raise CommandError("the django-q2 cluster stopped; its tracker stopped with it")


def _stop_tracking(
    stop: threading.Event, signalled: threading.Event
) -> Callable[[int, FrameType | None], None]:
    """A stop signal only says so: the loop's thread must not block in a handler (django-q2's
    own waits for its cluster), or the steps in flight would lose their claims meanwhile."""

    def handler(number: int, frame: FrameType | None) -> None:
        signalled.set()
        stop.set()

    return handler

"""Test settings: the real app, with a throwaway VAR_DIR and a fast simulator."""

import os
import tempfile

os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="playground-test-"))
os.environ.pop("AIGATEWAY_API_KEY", None)

from playground.settings import *  # noqa: F403
from playground.settings import DATABASES, Q_CLUSTER, REDIS_URL, VAR_DIR

# A file database (not shared-cache memory) so tracker threads and the live server
# thread can write at the same time, as they do in production.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
else:  # tests/postgres.py: the test database is made and dropped per run
    DATABASES["default"]["CONN_MAX_AGE"] = 0
Q_CLUSTER = {**Q_CLUSTER, "sync": True}
if REDIS_URL:  # tests/postgres.py: xdist workers share one server, each on a database of its
    # own (1, 2, …; see tests/services.py), so one's cache and queue never reach another.
    from tests.services import redis_db

    _worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    REDIS_URL = redis_db(REDIS_URL, 1 + int(_worker or 0))
    Q_CLUSTER["redis"] = REDIS_URL
    CACHES = {"default": {**CACHES["default"], "LOCATION": REDIS_URL}}  # noqa: F405
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
SIMULATOR_QUEUED_SECONDS = 0.2
SIMULATOR_PROCESSING_SECONDS = 0.5
TRACKER_THREADS = 4
TRACKER_LEASE_SECONDS = 5
LOGGING = {"version": 1, "disable_existing_loggers": False}
STORAGES = {
    **STORAGES,  # noqa: F405
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_AUTOREFRESH = True
# django-axes stays on, as in production (the login tests rely on it). Its attempts are rows
# in the test database, rolled back or flushed after every test, so no lockout leaks into
# the next test; a good log-in also clears them (AXES_RESET_ON_SUCCESS).
AXES_ENABLED = True
AXES_VERBOSE = False

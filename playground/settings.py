"""Settings: everything comes from the environment, with safe local defaults.

With no environment at all the app runs on SQLite, the django-q2 ORM broker, local files
under ./var and the built-in gateway simulator; see the README's settings table.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import tempfile
from datetime import timedelta
from pathlib import Path

import dj_database_url

from playground.lib.env import envbool, envint, envlist, envstr

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(envstr("VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """SECRET_KEY from the environment, else one generated once and kept under VAR_DIR."""
    if key := os.environ.get("SECRET_KEY"):
        return key
    path = VAR_DIR / "secret_key"
    if not path.exists():
        # Readable by the owner only from the first byte (mkstemp opens with O_CREAT|O_EXCL
        # and mode 0600, whatever the umask), and complete before it has its name: a hard
        # link never replaces a file, so when two processes start at once the loser gets
        # FileExistsError and reads the winner's key, never a half-written one.
        fd, tmp = tempfile.mkstemp(dir=VAR_DIR, prefix=".secret_key.")
        try:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(50))
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    return path.read_text().strip()


SECRET_KEY = _secret_key()


def derived_secret(purpose: str) -> str:
    """A secret of its own for each purpose, derived from SECRET_KEY (never a slice of it)."""
    return hmac.new(SECRET_KEY.encode(), purpose.encode(), hashlib.sha256).hexdigest()


DEBUG = envbool("DEBUG", False)
PORT = envint("PORT", 8000)
ALLOWED_HOSTS = envlist("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = envlist("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    # Before django.contrib.staticfiles and django_q: their `collectstatic` and `qcluster`
    # commands are extended by ours (a lock; the tracker runs in the cluster).
    "playground.runs",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "axes",
    "playground.accounts",
    "django_q",
    "playground.simulator",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Before CSRF: its check reads request.POST, which parses (and stores) the whole body,
    # so a logged-out client's 200 MB upload would land on disk before being sent to log in.
    "playground.accounts.middleware.LoginRequiredMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes asks: turns a lockout into a page
]

ROOT_URLCONF = "playground.urls"
WSGI_APPLICATION = "playground.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "playground.runs.context_processors.gateway",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        envstr("DATABASE_URL", f"sqlite:///{VAR_DIR / 'db.sqlite3'}"), conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the worker writes; IMMEDIATE transactions take
    # the write lock up front instead of failing with "database is locked" mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 30,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "generate"
LOGOUT_REDIRECT_URL = "login"

# --- Security -----------------------------------------------------------------------------
# django-axes throttles log-ins: after 5 failures for one username from one address, that
# pair is refused for 15 minutes (counted from the last failure), even with the right
# password. Its backend comes first so it can refuse before any password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True  # a good log-in forgets the earlier failures
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"

# HTTPS=true: this instance is served over TLS by a proxy that sets X-Forwarded-Proto.
# Everything `check --deploy` asks for follows; each can still be set on its own.
HTTPS = envbool("HTTPS", False)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if envbool("SECURE_PROXY_SSL_HEADER", HTTPS) else None
)
SECURE_SSL_REDIRECT = envbool("SECURE_SSL_REDIRECT", HTTPS)
# No redirect for machines: load balancers check health over plain HTTP, and the simulator
# is called, fetches references and posts webhooks over loopback at http://127.0.0.1.
# These answer only keyed or signed requests, and no browser cookie is involved.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^sim/", r"^r/", r"^webhooks/"]
SESSION_COOKIE_SECURE = envbool("SESSION_COOKIE_SECURE", HTTPS)
CSRF_COOKIE_SECURE = envbool("CSRF_COOKIE_SECURE", HTTPS)
SECURE_HSTS_SECONDS = envint("SECURE_HSTS_SECONDS", 365 * 24 * 3600 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = envbool("SECURE_HSTS_INCLUDE_SUBDOMAINS", HTTPS)
SECURE_HSTS_PRELOAD = envbool("SECURE_HSTS_PRELOAD", HTTPS)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(envstr("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES: dict[str, dict[str, object]] = {
    # Files under MEDIA_ROOT; MEDIA_S3_BUCKET (below) puts them in a bucket instead.
    "default": {"BACKEND": "playground.lib.media.LocalMediaStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# Uploads and results live here and are served only by views that check who is asking.
MEDIA_ROOT = Path(envstr("MEDIA_ROOT", str(VAR_DIR / "media")))
# Never served as static files (no URL route maps it); views below check access.
MEDIA_URL = "/media/"

# Uploads over this size stream to a temporary file instead of memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
# The first handler refuses a file over the reference limit while it streams (and at once
# when Content-Length says so), so Django's two never store more of it; see lib/uploads.py.
FILE_UPLOAD_HANDLERS = [
    "playground.lib.uploads.ReferenceSizeLimit",
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# MEDIA_S3_BUCKET: uploads, previews, posters and results live in an S3-compatible bucket
# (django-storages), so every web and worker process, on any machine, sees the same files.
# The bucket stays private (no ACL is set): browsers are redirected to presigned URLs that
# expire after MEDIA_URL_MAX_AGE_SECONDS, and the provider gets ones that last as long as
# REFERENCE_URL_MAX_AGE_SECONDS.
MEDIA_S3_BUCKET = envstr("MEDIA_S3_BUCKET", "")
MEDIA_URL_MAX_AGE_SECONDS = envint("MEDIA_URL_MAX_AGE_SECONDS", 300)
if MEDIA_S3_BUCKET:
    from playground.lib.bucket import bucket_storage

    STORAGES["default"] = bucket_storage(
        bucket=MEDIA_S3_BUCKET,
        endpoint_url=envstr("MEDIA_S3_ENDPOINT_URL", ""),
        region=envstr("MEDIA_S3_REGION", ""),
        access_key=envstr("MEDIA_S3_ACCESS_KEY_ID", ""),
        secret_key=envstr("MEDIA_S3_SECRET_ACCESS_KEY", ""),
        url_seconds=MEDIA_URL_MAX_AGE_SECONDS,
        spool_bytes=FILE_UPLOAD_MAX_MEMORY_SIZE,
    )

# --- The provider -----------------------------------------------------------------------
AIGATEWAY_API_KEY = envstr("AIGATEWAY_API_KEY", "")
# With no key, runs go to the simulator this app serves under /sim/.
SIMULATOR_ENABLED = not AIGATEWAY_API_KEY
# The real gateway's address (the default with a key; what a run's exported curl calls).
AIGATEWAY_PUBLIC_URL = "https://api.aigateway.sh"
AIGATEWAY_BASE_URL = envstr(
    "AIGATEWAY_BASE_URL",
    f"http://127.0.0.1:{PORT}/sim" if SIMULATOR_ENABLED else AIGATEWAY_PUBLIC_URL,
).rstrip("/")
# Where the provider can reach this instance (signed reference URLs, webhooks).
PUBLIC_BASE_URL = envstr("PUBLIC_BASE_URL", "").rstrip("/")
# Shared secret the gateway signs webhooks with; webhooks are used only when it is set
# (or the simulator is on) and PUBLIC_BASE_URL is reachable by the gateway.
AIGATEWAY_WEBHOOK_SECRET = envstr("AIGATEWAY_WEBHOOK_SECRET", "")
AIGATEWAY_WEBHOOKS = envbool("AIGATEWAY_WEBHOOKS", True)  # false: polling only
if SIMULATOR_ENABLED and not AIGATEWAY_WEBHOOK_SECRET:
    AIGATEWAY_WEBHOOK_SECRET = derived_secret("simulator-webhook-secret")
# The simulator answers only requests with this key, which only our own client sends: it
# fetches and posts to URLs, so nobody else may hand it work.
SIMULATOR_API_KEY = derived_secret("simulator-api-key")
# Open sign-up with a real key would let anyone spend the owner's money: with a key set,
# sign-up is off unless asked for explicitly (invites still work; see accounts/).
SIGNUP_ENABLED = envbool("SIGNUP_ENABLED", SIMULATOR_ENABLED)
AIGATEWAY_TIMEOUT_SECONDS = envint("AIGATEWAY_TIMEOUT_SECONDS", 30)
# Signed reference URLs stay valid this long: long enough for a queued job to start.
REFERENCE_URL_MAX_AGE_SECONDS = envint("REFERENCE_URL_MAX_AGE_SECONDS", 6 * 3600)

# --- Tracking -----------------------------------------------------------------------------
POLL_INTERVAL_SECONDS = 3  # the gateway's rule: at most one poll per job every 3 s
# A poll can wait a moment in a queue (ours, the network's, the gateway's) before it is
# counted, and the next one may not: this margin keeps the gap the gateway sees at 3 s.
# `make bench` with 1,000 jobs saw up to 0.46 s of such jitter on two loaded cores.
POLL_MARGIN_SECONDS = 0.6
# Jobs submitted with a webhook_url are polled this often, as the fallback.
WEBHOOK_FALLBACK_POLL_SECONDS = envint("WEBHOOK_FALLBACK_POLL_SECONDS", 10)
RUN_DEADLINE_MINUTES = envint("RUN_DEADLINE_MINUTES", 20)
# Every worker (`manage.py qcluster`) runs one tracker loop; this many provider requests
# of it run at once.
TRACKER_THREADS = envint("TRACKER_THREADS", 16)
# A worker's claim on a run, renewed every third of it while the run's step runs. A dead
# worker's runs come back when it lapses, or at once when a worker on its host sees its
# pid is gone.
TRACKER_LEASE_SECONDS = envint("TRACKER_LEASE_SECONDS", 15)

# Limits, checked before any paid call (and again inside the transaction that creates the
# run). 0 or empty means no limit.
# A batch counts whole against it, so it is also the biggest batch a user can start.
MAX_INFLIGHT_RUNS_PER_USER = envint("MAX_INFLIGHT_RUNS_PER_USER", 10)
MONTHLY_BUDGET_USD = envstr("MONTHLY_BUDGET_USD", "")  # per user
INSTANCE_MONTHLY_BUDGET_USD = envstr("INSTANCE_MONTHLY_BUDGET_USD", "")  # all users together
USER_STORAGE_QUOTA_MB = envint("USER_STORAGE_QUOTA_MB", 2048)
# The live status poll's key stops working after this; the page mints a fresh one.
STATUS_KEY_MAX_AGE_SECONDS = envint("STATUS_KEY_MAX_AGE_SECONDS", 12 * 3600)

# --- Simulator ----------------------------------------------------------------------------
SIMULATOR_ROOT = Path(envstr("SIMULATOR_ROOT", str(VAR_DIR / "simulator")))
SIMULATOR_QUEUED_SECONDS = float(envstr("SIMULATOR_QUEUED_SECONDS", "1.5"))
SIMULATOR_PROCESSING_SECONDS = float(envstr("SIMULATOR_PROCESSING_SECONDS", "4"))
SIMULATOR_PROCESSING_JITTER = float(envstr("SIMULATOR_PROCESSING_JITTER", "0"))
# Log every poll's time per job (the benchmark checks the 3 s rule across processes).
SIMULATOR_POLL_LOG = envbool("SIMULATOR_POLL_LOG", False)
SIMULATOR_RESULT_TTL_SECONDS = envint("SIMULATOR_RESULT_TTL_SECONDS", 24 * 3600)
SIMULATOR_RESULT_URL_SECRET = derived_secret("simulator-result-url")
# Jobs not yet finished that the simulator holds at once; beyond it, submits get a 429.
SIMULATOR_MAX_ACTIVE_JOBS = envint("SIMULATOR_MAX_ACTIVE_JOBS", 2000)

# --- django-q2 ----------------------------------------------------------------------------
Q_CLUSTER = {
    "name": "playground",
    "orm": "default",
    # The tracker runs in the qcluster process itself (runs/management/commands/
    # qcluster.py); its task workers have little else to do.
    "workers": envint("Q_WORKERS", 1),
    "timeout": 300,
    "retry": 360,
    "max_attempts": 3,
    "catch_up": False,
    "poll": 0.2,
    "save_limit": 500,
    "ack_failures": True,
    "sync": envbool("Q_SYNC", False),
    # Preview transcodes have a queue and a worker of their own (`Q_CLUSTER_NAME=previews
    # manage.py qcluster`, the Procfile's `previews`), so a burst of uploads never delays
    # the tracker of paid jobs. A 4K clip can take minutes; two tries are enough.
    "ALT_CLUSTERS": {
        "previews": {
            "workers": 1,
            "timeout": 600,
            "retry": 660,
            "max_attempts": 2,
            "scheduler": False,
        },
    },
}

# REDIS_URL moves django-q2's queue to Redis and gives Django a Redis cache. The ORM broker
# (the default) acknowledges a task only once it is done, so a task whose worker died is
# delivered again after `retry`; Redis hands a task out once, so one lost with its worker
# is gone (README). Tracking is no task: it lives in the workers, its state in the database.
REDIS_URL = envstr("REDIS_URL", "")
if REDIS_URL:
    Q_CLUSTER.pop("orm")
    Q_CLUSTER["redis"] = REDIS_URL
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    }

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": envstr("LOG_LEVEL", "INFO")},
    "loggers": {"httpx": {"level": "WARNING"}},
}

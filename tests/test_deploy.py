"""Deploying: HTTPS behind a proxy, `check --deploy`, and the generated secret key file."""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.urls import reverse

from playground.runs import steps
from playground.runs.models import ShareLink
from playground.runs.references import signed_reference_url
from tests.builders import make_reference, make_run

BASE_DIR = Path(django_settings.BASE_DIR)
SECURITY_SETTINGS = [
    "SECURE_PROXY_SSL_HEADER",
    "SECURE_SSL_REDIRECT",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
]
DUMP = (
    "import json\n"
    "from django.conf import settings\n"
    f"print(json.dumps({{name: getattr(settings, name) for name in {SECURITY_SETTINGS!r}}}))\n"
)


def clean_env(var_dir: Path, **env: str) -> dict[str, str]:
    """Only what a fresh shell on a server would have, and the variables given."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "VAR_DIR": str(var_dir),
        "DJANGO_SETTINGS_MODULE": "playground.settings",
        **env,
    }


def run(args: list[str], env: dict[str, str], **kwargs) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def security_settings(var_dir: Path, **env: str) -> dict[str, object]:
    done = run(["-c", DUMP], clean_env(var_dir, **env))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- check --deploy -----------------------------------------------------------------------

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": secrets.token_urlsafe(60),
    "ALLOWED_HOSTS": "play.example.com",
}


def check_deploy(var_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return run(
        ["manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        clean_env(var_dir, **PRODUCTION, **env),
    )


def test_it_check_deploy_passes_with_https_behind_a_proxy(tmp_path):
    done = check_deploy(tmp_path, HTTPS="true")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "no issues" in done.stdout


def test_it_check_deploy_warns_without_https(tmp_path):
    done = check_deploy(tmp_path)

    assert done.returncode != 0
    warnings = set(re.findall(r"security\.W\d+", done.stdout + done.stderr))
    assert {"security.W004", "security.W008", "security.W012", "security.W016"} <= warnings


def test_it_https_turns_on_every_security_setting(tmp_path):
    assert security_settings(tmp_path, HTTPS="true") == {
        "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_SSL_REDIRECT": True,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 365 * 24 * 3600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
    }


def test_it_each_security_setting_can_be_set_on_its_own(tmp_path):
    off = security_settings(tmp_path)
    assert off["SECURE_PROXY_SSL_HEADER"] is None and off["SECURE_HSTS_SECONDS"] == 0
    assert not any(off.values())

    for name in SECURITY_SETTINGS:
        value = "3600" if name == "SECURE_HSTS_SECONDS" else "true"
        expected = {
            "SECURE_HSTS_SECONDS": 3600,
            "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        }.get(name, True)
        assert security_settings(tmp_path, **{name: value}) == {**off, name: expected}, name

    most = security_settings(tmp_path, HTTPS="true", SECURE_HSTS_PRELOAD="false")
    assert most["SECURE_HSTS_PRELOAD"] is False and most["SECURE_SSL_REDIRECT"] is True


# --- behind the proxy ---------------------------------------------------------------------


@pytest.fixture
def https(settings, tmp_path) -> None:
    """This process's settings as HTTPS=true makes them (read in a fresh process)."""
    for name, value in security_settings(tmp_path, HTTPS="true").items():
        setattr(settings, name, tuple(value) if isinstance(value, list) else value)


@pytest.mark.django_db
def test_it_the_share_url_is_https_behind_a_tls_proxy(https, owner_client, owner, clip):
    run = make_run(owner, clip)
    token = ShareLink.create(owner, run=run).token

    # What a TLS proxy forwards: the browser's Host and the scheme it was asked on.
    proxied = {"Host": "testserver", "X-Forwarded-Proto": "https"}
    page = owner_client.get(run.get_absolute_url(), headers=proxied)

    assert page.status_code == 200
    share_url = re.search(r'class="share-url" readonly value="([^"]+)"', page.content.decode())
    assert share_url, "no share box"
    assert share_url.group(1) == f"https://testserver{reverse('shared', args=[token])}"


@pytest.mark.django_db
def test_it_plain_http_is_redirected_but_the_health_check_is_not(https, client):
    page = client.get(reverse("login"))
    health = client.get(reverse("healthz"))
    secure = client.get(reverse("login"), headers={"X-Forwarded-Proto": "https"})

    assert page.status_code == 301
    assert page["Location"] == f"https://testserver{reverse('login')}"
    assert health.status_code == 200 and health.content == b"ok"
    assert secure.status_code == 200
    assert secure["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"


@pytest.mark.django_db
def test_it_machine_endpoints_answer_plain_http_behind_a_tls_proxy(
    https, client, owner, clip, local_files
):
    """The simulator is called, fetches references and posts webhooks over loopback (with
    a bucket it fetches references from the bucket instead)."""
    reference_url = urlsplit(signed_reference_url(make_reference(owner, clip)))
    assert reference_url.scheme == "http"  # no PUBLIC_BASE_URL: the loopback address

    reference = client.get(reference_url.path)
    job = client.get(reverse("simulator:job", args=["job_none"]))
    webhook = client.post(reverse("webhook"), b"{}", content_type="application/json")

    assert reference.status_code == 200
    assert job.status_code in (401, 404)  # the simulator's own answer: no key
    assert webhook.status_code in range(400, 500)  # unsigned, refused by the view
    assert 301 not in (reference.status_code, job.status_code, webhook.status_code)


# --- the generated secret key -------------------------------------------------------------

READ_KEY = "from django.conf import settings; print(settings.SECRET_KEY)"
# With chmod made a no-op, the file's mode is the one it was created with.
NO_CHMOD = "import os, pathlib; os.chmod = pathlib.Path.chmod = lambda *args, **kwargs: None\n"


def test_it_the_generated_secret_key_is_private_from_the_start(tmp_path):
    done = run(["-c", NO_CHMOD + READ_KEY], clean_env(tmp_path), umask=0)

    assert done.returncode == 0, done.stderr
    path = tmp_path / "secret_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_text().strip()
    assert len(key) >= 50 and done.stdout.strip() == key
    assert sorted(p.name for p in tmp_path.iterdir() if "secret" in p.name) == ["secret_key"]
    again = run(["-c", READ_KEY], clean_env(tmp_path), umask=0)
    assert again.stdout.strip() == key  # kept, not made anew


def test_it_processes_starting_at_once_share_one_secret_key(tmp_path):
    env = clean_env(tmp_path)
    starts = [
        subprocess.Popen(
            [sys.executable, "-c", READ_KEY],
            cwd=BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(8)
    ]
    keys = set()
    for process in starts:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        keys.add(out.strip())

    assert keys == {(tmp_path / "secret_key").read_text().strip()}
    assert len(keys.pop()) >= 50
    assert sorted(p.name for p in tmp_path.iterdir() if "secret" in p.name) == ["secret_key"]


@pytest.mark.django_db
def test_it_hands_the_provider_https_reference_urls_behind_tls(
    https, settings, owner, clip, local_files
):
    settings.HTTPS = True
    settings.PUBLIC_BASE_URL = "http://play.example.com"  # as typed, without the s
    url = signed_reference_url(make_reference(owner, clip))
    assert url.startswith("https://play.example.com/r/")
    assert steps.webhook_url() == "https://play.example.com/webhooks/aigateway"


def test_it_runs_on_the_database_it_was_given(db):
    """`tests/postgres.py` runs this suite on PostgreSQL through DATABASE_URL alone."""
    wanted = "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    assert connection.vendor == wanted

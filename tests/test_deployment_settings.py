"""Deployment settings, each read by a fresh interpreter (settings load once per process):
no committed SECRET_KEY, a per-installation key for local use only, and a production
configuration that ``manage.py check --deploy`` passes without a warning."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management.utils import get_random_secret_key

from campus_core.database import database_url

ROOT = Path(__file__).resolve().parent.parent
# Everything these tests set; removed from the inherited environment first.
DEPLOYMENT_VARIABLES = (
    "SECRET_KEY",
    "DEBUG",
    "LOCAL_MODE",
    "ALLOWED_HOSTS",
    "CAMPUS_LOCAL_DIR",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_PROXY_SSL_HEADER",
)
PRODUCTION = {
    "SECRET_KEY": get_random_secret_key(),
    "ALLOWED_HOSTS": "campus.example.edu",
    "CSRF_TRUSTED_ORIGINS": "https://campus.example.edu",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
    "SESSION_COOKIE_SECURE": "true",
    "CSRF_COOKIE_SECURE": "true",
    "SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
}


def run(*args: str, local_dir: Path, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in DEPLOYMENT_VARIABLES}
    # The test database's server, so no child starts an embedded one in local_dir.
    base["DATABASE_URL"] = os.environ.get("DATABASE_URL") or database_url()
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env={**base, "CAMPUS_LOCAL_DIR": str(local_dir), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


PRINT_KEY = ("-c", "from django.conf import settings; print(settings.SECRET_KEY)")


def test_check_deploy_is_clean_in_a_production_configuration(tmp_path: Path) -> None:
    result = run(
        "manage.py",
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        local_dir=tmp_path,
        **PRODUCTION,
    )

    assert result.returncode == 0, result.stderr
    assert "System check identified no issues (0 silenced)." in result.stdout
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize(
    "env",
    [
        {"ALLOWED_HOSTS": "campus.example.edu"},
        {"ALLOWED_HOSTS": "*"},
        {"LOCAL_MODE": "false"},  # loopback hosts, but declared not local
    ],
)
def test_start_up_refuses_a_deployment_without_secret_key(
    tmp_path: Path, env: dict[str, str]
) -> None:
    result = run("manage.py", "check", local_dir=tmp_path, **env)

    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRET_KEY is not set" in result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_local_use_generates_one_private_key_per_installation(tmp_path: Path) -> None:
    first = run(*PRINT_KEY, local_dir=tmp_path / "one")
    again = run(*PRINT_KEY, local_dir=tmp_path / "one")
    other = run(*PRINT_KEY, local_dir=tmp_path / "two")
    debug = run(*PRINT_KEY, local_dir=tmp_path / "three", DEBUG="true", ALLOWED_HOSTS="example.org")

    for result in (first, again, other, debug):
        assert result.returncode == 0, result.stderr
    key_file = tmp_path / "one" / "secret_key"
    assert first.stdout.strip() == again.stdout.strip() == key_file.read_text()
    assert len(key_file.read_text()) >= 50
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert other.stdout.strip() != first.stdout.strip()
    assert (tmp_path / "three" / "secret_key").exists()
    assert list((tmp_path / "one").iterdir()) == [key_file]  # no temporary file left


def test_check_deploy_flags_the_local_key(tmp_path: Path) -> None:
    production_without_key = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = run(
        "manage.py",
        "check",
        "--deploy",
        local_dir=tmp_path,
        **production_without_key,
        LOCAL_MODE="true",
    )

    assert "campus_core.W001" in result.stderr + result.stdout


def test_a_configured_secret_key_is_used_as_is(tmp_path: Path) -> None:
    result = run(*PRINT_KEY, local_dir=tmp_path, SECRET_KEY="k" * 60 + "x")

    assert result.stdout.strip() == "k" * 60 + "x"
    assert not (tmp_path / "secret_key").exists()


def test_a_malformed_proxy_ssl_header_stops_start_up(tmp_path: Path) -> None:
    result = run("manage.py", "check", local_dir=tmp_path, SECURE_PROXY_SSL_HEADER="https")

    assert result.returncode != 0
    assert "SECURE_PROXY_SSL_HEADER must be 'HEADER,value'" in result.stderr

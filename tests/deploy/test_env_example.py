""".env.example lists every variable, and its production values pass Django's deployment checks.

Settings are switched by the environment only, so each case runs ``manage.py`` in a subprocess with exactly the
environment an operator would give it (nothing inherited from the test run).
"""

from __future__ import annotations

import re
import secrets
import subprocess

import pytest

from .support import ENV_EXAMPLE, PYTHON, ROOT, hermetic_env, parse_env_example, production_env

# Where variables are read: the settings (django-environ), gunicorn's config, the container scripts, Compose.
_ENV_CALL = re.compile(r"\benv(?:\.\w+)?\(\s*[\"']([A-Z][A-Z0-9_]*)[\"']")
_OS_ENVIRON = re.compile(
    r"(?:os\.environ(?:\.get\(|\[|\.setdefault\()|\b_(?:int|bool)_env\()\s*[\"']([A-Z][A-Z0-9_]*)[\"']"
)
_SHELL_VAR = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::?-[^}]*)?\}")
# Set by the platform or by the scripts for themselves, not by an operator.
_NOT_CONFIGURATION = {"DJANGO_SETTINGS_MODULE", "HOSTNAME", "PATH", "HOME"}


def _run_manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PYTHON), "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180
    )


def _with_real_secrets(values: dict[str, str]) -> dict[str, str]:
    return {**values, "DJANGO_SECRET_KEY": secrets.token_urlsafe(50)}


def variables_read_by_the_code() -> set[str]:
    names: set[str] = set()
    for path in (ROOT / "jobops" / "settings").glob("*.py"):
        names |= set(_ENV_CALL.findall(path.read_text()))
    for path in [ROOT / "gunicorn.conf.py", *(ROOT / "docker").glob("*.py")]:
        names |= set(_OS_ENVIRON.findall(path.read_text()))
    for path in [ROOT / "docker" / "entrypoint.sh", ROOT / "docker-compose.yml"]:
        names |= set(_SHELL_VAR.findall(path.read_text()))
    return names - _NOT_CONFIGURATION


def test_every_variable_the_code_reads_is_listed():
    read = variables_read_by_the_code()
    # The scan itself must find the well-known ones, or it proves nothing.
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "EMAIL_BACKEND", "GUNICORN_WORKERS", "WEB_PORT"} <= read
    _, _, listed = parse_env_example()
    missing = sorted(read - listed)
    assert not missing, f"add these to .env.example: {missing}"


def test_no_active_line_is_empty():
    # An empty value is not "unset" for django-environ (an empty JWT_SIGNING_KEY would be used as the key).
    empty = [line for line in ENV_EXAMPLE.read_text().splitlines() if re.fullmatch(r"[A-Z][A-Z0-9_]*=\s*", line)]
    assert not empty


def test_production_block_switches_on_the_security_settings():
    _, production, _ = parse_env_example()
    for name in (
        "DJANGO_SECURE_SSL_REDIRECT",
        "DJANGO_BEHIND_TLS_PROXY",
        "DJANGO_SECURE_COOKIES",
        "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS",
    ):
        assert production[name] == "1", name
    assert int(production["DJANGO_SECURE_HSTS_SECONDS"]) >= 31536000
    assert production["DJANGO_DEBUG"] == "0"
    assert production["DJANGO_ALLOWED_HOSTS"] and "*" not in production["DJANGO_ALLOWED_HOSTS"]
    assert production["DJANGO_CSRF_TRUSTED_ORIGINS"].startswith("https://")


def test_check_deploy_passes_with_the_production_values():
    result = _run_manage(
        hermetic_env(_with_real_secrets(production_env())), "check", "--deploy", "--fail-level", "WARNING"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_check_deploy_fails_with_the_local_values():
    # The gate bites: the non-production values (no TLS, no HSTS, insecure cookies) are reported.
    active, _, _ = parse_env_example()
    result = _run_manage(hermetic_env(_with_real_secrets(active)), "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode != 0
    for check_id in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert check_id in result.stdout + result.stderr


@pytest.mark.parametrize(
    "secret",
    [None, "", "change-me", "django-insecure-abc"],
    ids=["missing", "empty", "env-example-default", "django-insecure"],
)
def test_debug_off_refuses_a_missing_or_default_secret_key(secret):
    values = production_env()
    values.pop("DJANGO_SECRET_KEY")
    if secret is not None:
        values["DJANGO_SECRET_KEY"] = secret
    result = _run_manage(hermetic_env(values), "check")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "DJANGO_SECRET_KEY" in result.stderr


def test_the_example_secrets_are_all_refused_placeholders():
    # Whatever is copied from .env.example unchanged must not start in production.
    active, production, _ = parse_env_example()
    assert active["DJANGO_SECRET_KEY"] == production["DJANGO_SECRET_KEY"] == "change-me"
    result = _run_manage(hermetic_env(production_env()), "check")
    assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr


def test_debug_on_accepts_the_placeholder():
    values = {**production_env(), "DJANGO_DEBUG": "1", "DJANGO_SECURE_SSL_REDIRECT": "0"}
    result = _run_manage(hermetic_env(values), "check")
    assert result.returncode == 0, result.stderr

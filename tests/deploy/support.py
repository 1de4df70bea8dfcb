"""Helpers shared by the deployment tests: the repository's deployment files, parsed."""

from __future__ import annotations

import os
import re
import socket
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
ENV_EXAMPLE = ROOT / ".env.example"
PYTHON = ROOT / ".venv" / "bin" / "python"

_ASSIGNMENT = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)=(?P<value>.*)$")
_PRODUCTION_START = "# >>> production"
_PRODUCTION_END = "# <<< production"


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def parse_env_example(path: Path = ENV_EXAMPLE) -> tuple[dict[str, str], dict[str, str], set[str]]:
    """``(active values, production values, every listed name)`` of an .env.example file.

    Active values are the uncommented ``NAME=value`` lines; production values the ``# NAME=value`` lines between
    the ``# >>> production`` and ``# <<< production`` markers; listed names also include commented examples.
    """
    active: dict[str, str] = {}
    production: dict[str, str] = {}
    listed: set[str] = set()
    in_production = False
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line == _PRODUCTION_START:
            in_production = True
            continue
        if line == _PRODUCTION_END:
            in_production = False
            continue
        commented = line.startswith("#")
        match = _ASSIGNMENT.match(line.lstrip("#").strip() if commented else line)
        if not match:
            continue
        name, value = match["name"], _unquote(match["value"])
        listed.add(name)
        if in_production and commented:
            production[name] = value
        elif not commented:
            active[name] = value
    return active, production, listed


def production_env() -> dict[str, str]:
    """The active values overlaid with the production block: what an operator's production .env holds."""
    active, production, _ = parse_env_example()
    return {**active, **production}


def hermetic_env(values: dict[str, str], **extra: str) -> dict[str, str]:
    """A subprocess environment with only ``values`` (+ ``extra``) and what a process needs to start at all."""
    env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR") if key in os.environ}
    env["PATH"] = f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
    env["DJANGO_SETTINGS_MODULE"] = "jobops.settings.base"
    env.update(values)
    env.update(extra)
    return env


def load_yaml(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text())


_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Z0-9_]+)(?::?-(?P<default>[^}]*))?\}")


def interpolate_defaults(value: str) -> str:
    """Resolve Compose ``${NAME:-default}`` with the defaults only (what a bare checkout gets)."""
    return _INTERPOLATION.sub(lambda m: m["default"] or "", value)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The suite's one rule for services (README "Tests"): a test uses PostgreSQL, RabbitMQ or Redis only when the
# environment names it (DATABASE_URL, CELERY_BROKER_URL, REDIS_URL, as CI's .ci/run does); otherwise it skips
# (fails under JOBOPS_REQUIRE_SERVICES=1). No local server is used, or has databases created on it, by surprise.


def broker_url() -> str:
    """The RabbitMQ of CELERY_BROKER_URL (the test settings replace it with memory:// for the app), or ``""``."""
    url = os.environ.get("CELERY_BROKER_URL", "")
    return url if url.startswith("amqp") else ""


def redis_url() -> str:
    """The Redis of REDIS_URL, or ``""``."""
    url = os.environ.get("REDIS_URL", "")
    return url if url.startswith("redis") else ""


def postgres_server_url() -> str:
    """The PostgreSQL server of DATABASE_URL (callers replace the database part), or ``""``."""
    url = os.environ.get("DATABASE_URL", "")
    return url if url.startswith(("postgres://", "postgresql://")) else ""


def broker_available(url: str) -> bool:
    from kombu import Connection

    if not url:
        return False
    try:
        with Connection(url, connect_timeout=2) as conn:
            conn.ensure_connection(max_retries=0, timeout=3)
        return True
    except Exception:
        return False


def redis_available(url: str) -> bool:
    import redis

    if not url:
        return False
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=2).ping())
    except Exception:
        return False

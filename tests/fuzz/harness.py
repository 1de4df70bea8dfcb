"""A real JobOps server for black-box tests: its own PostgreSQL database, migrated and seeded, behind gunicorn.

Used by the schemathesis run (``tests/fuzz``). The database is created by the test (``jobops_fuzz_<pid>``) and
dropped afterwards, so runs never share state with each other or with the pytest-django test database.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "test-artifacts"

# Where to create the throwaway database: the server of JOBOPS_FUZZ_PG_URL or DATABASE_URL when that is
# PostgreSQL; without one the fuzz run skips (fails under JOBOPS_REQUIRE_SERVICES=1), like every test that needs
# a service (README "Tests"): no local server is used by surprise.

# Environment the server must not inherit from the test run (it gets its own database, cache prefix, broker).
_DROP_ENV = (
    "DATABASE_URL",
    "DJANGO_SETTINGS_MODULE",
    "CELERY_BROKER_URL",
    "CELERY_RESULT_BACKEND",
    "CELERY_TASK_ALWAYS_EAGER",
    "EMAIL_HOST",
    "EMAIL_BACKEND",
    "CACHE_KEY_PREFIX",
    "DJANGO_DEBUG",
)


def maintenance_url() -> str:
    """A URL of the ``postgres`` maintenance database on the server the environment names, or ``""``."""
    url = os.environ.get("JOBOPS_FUZZ_PG_URL") or os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return ""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/postgres", "", ""))


def postgres_available() -> bool:
    if not maintenance_url():
        return False
    try:
        with psycopg.connect(maintenance_url(), connect_timeout=3):
            return True
    except psycopg.Error:
        return False


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the test process dies, so a killed run leaves no server behind."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def throwaway_database(name: str) -> Iterator[str]:
    """Create database ``name`` (dropping a leftover of the same name first); yield its URL; drop it."""
    admin = maintenance_url()

    def drop() -> None:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    drop()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    parts = urlsplit(admin)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, f"/{name}", "", ""))
    finally:
        drop()


@dataclass
class Server:
    base_url: str
    env: dict[str, str]
    log_path: Path

    def manage(self, *args: str, timeout: float = 300) -> str:
        return run_manage(self.env, *args, timeout=timeout)


def server_env(database_url: str, *, settings: str = "tests.fuzz.settings", **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in _DROP_ENV}
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": settings,
            "DATABASE_URL": database_url,
            "DJANGO_SECRET_KEY": f"fuzz-only-{os.getpid()}-{time.time_ns()}-not-a-production-secret",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "CACHE_KEY_PREFIX": f"jobops-fuzz-{os.getpid()}",
            "JOBOPS_PLAIN_STATIC": "1",
            "LOG_FORMAT": "plain",
            "LOG_LEVEL": "WARNING",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.update(extra)
    return env


def run_manage(env: dict[str, str], *args: str, timeout: float = 300) -> str:
    result = subprocess.run(  # noqa: S603 - fixed argv, no shell
        [str(VENV_BIN / "python"), "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        command = " ".join(args)
        raise RuntimeError(f"manage.py {command} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


def wait_until_up(url: str, process: subprocess.Popen[bytes], log_path: Path, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback URL built here
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    raise RuntimeError(f"gunicorn did not answer {url} within {seconds} s:\n{log_path.read_text()[-4000:]}")


@contextmanager
def gunicorn(env: dict[str, str], log_path: Path, *, workers: int = 2) -> Iterator[Server]:
    """Run gunicorn with ``env`` on a free loopback port until the block ends (SIGTERM, then SIGKILL)."""
    port = free_port()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    gunicorn_bin = shutil.which("gunicorn", path=str(VENV_BIN)) or str(VENV_BIN / "gunicorn")
    with log_path.open("wb") as log:
        process = subprocess.Popen(  # noqa: S603 - fixed argv, no shell
            # The production gunicorn configuration, pointed at a loopback port.
            [gunicorn_bin, "--config", str(ROOT / "gunicorn.conf.py"), "jobops.wsgi:application"],
            cwd=ROOT,
            env={
                **env,
                "GUNICORN_BIND": f"127.0.0.1:{port}",
                "GUNICORN_WORKERS": str(workers),
                "GUNICORN_TIMEOUT": "120",
                "GUNICORN_GRACEFUL_TIMEOUT": "5",
            },
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,  # only a prctl between fork and exec
        )
        try:
            base_url = f"http://127.0.0.1:{port}"
            wait_until_up(f"{base_url}/healthz/", process, log_path)
            yield Server(base_url=base_url, env=env, log_path=log_path)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)

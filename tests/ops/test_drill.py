"""The scale-out drill in its CI form (``ops/drill.py --short``): the whole stack as separate processes on this
machine's RabbitMQ and Redis and a PostgreSQL primary + streaming standby of its own, faults injected through the
fault proxy, and every check of the full drill. The test passes only if the drill's summary line has every count at
0 and the recovery within the target; its report is kept in ``test-artifacts/drill/`` for a failing run."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from ops.pgpair import available as binaries_available
from tests.conftest import require_service
from tests.tasks.test_integration import BROKER_NAMED, REDIS_NAMED, redis_up, tcp_open

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.services

SUMMARY = re.compile(
    r"^drill: invariant_violations=(\d+) lost=(\d+) duplicated=(\d+) feed_gaps=(\d+) http_500=(\d+) "
    r"recovery_s=([\d.]+)$",
    re.MULTILINE,
)


def test_short_drill_loses_nothing_under_faults(tmp_path):
    # The suite's rule (README): a service is used only when the environment names it. The drill uses the local
    # RabbitMQ (a throw-away vhost made with rabbitmqctl) and Redis (its own databases 11 and 12).
    local_rabbit = tcp_open("127.0.0.1", 5672) and shutil.which("rabbitmqctl") is not None
    require_service("RabbitMQ", BROKER_NAMED and local_rabbit, "set CELERY_BROKER_URL; rabbitmqctl on this machine")
    require_service("Redis", REDIS_NAMED and redis_up(), "set REDIS_URL (the local server)")
    require_service("PostgreSQL server binaries", binaries_available(), "initdb and pg_basebackup for the pair")
    require_service("root", os.geteuid() == 0, "the PostgreSQL pair runs as the postgres user")
    out = tmp_path / "drill"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    # Its own process group: on a timeout the drill gets SIGTERM (it then stops every node, the proxy and the pair),
    # and the whole group SIGKILL if it does not finish.
    process = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "ops" / "drill.py"),
            "--duration",
            "90",
            "--short",
            "--no-chart",
            "--drain-timeout",
            "150",
            "--out",
            str(out),
        ],  # fmt: skip
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=900)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            stdout, stderr = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate()
        pytest.fail(f"the drill did not finish in 15 minutes\n{stdout[-3000:]}")
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    artifacts = REPO / "test-artifacts" / "drill"
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "stdout.txt").write_text(result.stdout + "\n--- stderr\n" + result.stderr[-20000:])
    for name in ("REPORT.md", "report.json"):
        if (out / name).exists():
            shutil.copy(out / name, artifacts / name)
    match = SUMMARY.search(result.stdout)
    assert match, f"no summary line; exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    violations, lost, duplicated, gaps, http_500 = (int(v) for v in match.groups()[:5])
    report = (out / "REPORT.md").read_text()
    assert (violations, lost, duplicated, gaps, http_500) == (0, 0, 0, 0, 0), report
    assert float(match.group(6)) <= 10.0, report
    assert result.returncode == 0, result.stdout[-3000:]
    # Every fault of the schedule was injected; the standby served the report reads and, while it was down, the
    # primary answered them (the drill counts a failure of either as an invariant violation, asserted above).
    for fault in (
        "web node SIGKILL",
        "ASGI node SIGKILL",
        "worker SIGKILL",
        "PostgreSQL cut",
        "RabbitMQ cut",
        "Redis cut",
        "standby stopped",
    ):
        assert f"| {fault}" in report, f"{fault} missing from the report"
    assert "Problems: none." in report

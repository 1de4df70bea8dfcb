"""A TCP proxy that a test can cut and restore: a shared service (PostgreSQL, Redis) "down" without touching the
real server, which other tests and sessions use. It runs the drill's own proxy (``ops/faultproxy.py``) as a process,
so the tests and ``make drill`` inject the same fault.

``cut()`` resets every open connection (as when the server or the link dies) and stops listening, so a new
connection is refused at once; ``restore()`` listens again on the same port.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ops.faultproxy import Control, free_port

SCRIPT = Path(__file__).resolve().parents[1] / "ops" / "faultproxy.py"


class FaultProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.port = free_port()
        self.control = free_port()
        self.process = subprocess.Popen(
            [
                sys.executable,
                str(SCRIPT),
                "--control",
                f"127.0.0.1:{self.control}",
                "--route",
                f"target={self.port}:{target_host}:{target_port}",
            ],  # fmt: skip
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        ready = self.process.stdout.readline()
        if not ready.startswith("{"):
            self.close()
            raise RuntimeError(f"the fault proxy did not start: {ready!r}")

    @property
    def connections(self) -> int:
        """Connections accepted so far (a test can tell a client reconnected)."""
        return int(Control(self.control).status()["target"]["accepted"])

    def cut(self) -> None:
        Control(self.control).cut("target")

    def restore(self) -> None:
        Control(self.control).restore("target")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

"""The schemathesis seed in the pytest summary, whether the fuzz run passed or failed: CI logs keep it for replay."""

from __future__ import annotations

import sys


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    module = sys.modules.get("tests.fuzz.test_schemathesis")
    ran = any(
        "test_schemathesis.py" in getattr(report, "nodeid", "")
        for reports in terminalreporter.stats.values()
        for report in reports
    )
    if module is None or not ran:  # the schemathesis run was not part of this session
        return
    terminalreporter.write_sep("-", "schemathesis seed")
    terminalreporter.write_line(f"seed {module.SEED}; replay this run: {module.REPLAY}")

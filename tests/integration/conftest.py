"""Prints the figures the crash-safety harness and the concurrency tests measured."""

from __future__ import annotations

import pytest


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.integration import test_audit_crash, test_concurrency, test_crash_safety

    for line in [*test_crash_safety.SUMMARY, *test_concurrency.FIGURES, *test_audit_crash.SUMMARY]:
        terminalreporter.write_line(line)

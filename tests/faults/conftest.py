"""Prints the fault rounds' table at the end of the run, whatever passed or failed."""

import pytest

from tests.faults import report


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not report.ROWS:
        return
    terminalreporter.section("fault rounds")
    terminalreporter.write_line(report.table())
    for note in report.NOTES:
        terminalreporter.write_line(note)
    terminalreporter.write_line(f"(rows in {report.RESULTS}, evidence in {report.RESULTS.parent / 'evidence.md'})")

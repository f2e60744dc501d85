"""A pytest plugin printing the fault suite's figures (helpers/figures.py) once, for the whole run.

Under pytest-xdist each test runs in a worker process, and what it records stays there. So the
figures a test recorded ride on its last report (teardown) as user properties; the controlling
process, which prints the summary, records them again as the reports arrive. Without xdist the
figures are already in this process and nothing travels.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

from helpers import figures

# The user property name carrying one `record` call from a worker to the controller.
_FIGURE = "incidencias-figure"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.when == "teardown":
        report.user_properties.extend((_FIGURE, recorded) for recorded in figures.drain())
    return report


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Only reports relayed from a worker carry its `node` (pytest-xdist sets it)."""
    if getattr(report, "node", None) is None:
        return
    for key, recorded in report.user_properties:
        if key == _FIGURE:
            name, value = recorded
            figures.record(name, value)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print what the fault suite measured, when any of it ran."""
    lines = figures.summary_lines()
    if lines:
        terminalreporter.section(figures.HEADING)
        for line in lines:
            terminalreporter.write_line(line)

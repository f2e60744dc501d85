"""Figures the fault and abuse suite measures, printed together at the end of the pytest run.

Issue 6 asks the suite to show what it proved (messages tried, crashes, losses, duplicates, forged
commands accepted), not only pass or fail. Tests call `record` — before asserting, so a failing run
still shows the bad number — and helpers/figures_report.py prints everything in pytest's terminal
summary, adding up what several worker processes measured (`drain` in a worker, `record` again in
the controlling process).
"""

from __future__ import annotations

import threading
from typing import TypeGuard

HEADING = "incidencias fault suite figures"

# The figures issue 6 requires; shown as "not measured" when the tests that record them did not run.
REQUIRED = (
    "messages tried",
    "crashes of the daemon",
    "messages lost",
    "duplicate deliveries to customers",
    "automatic messages sent to auto-responders beyond the limit",
    "forged commands accepted",
)

_lock = threading.Lock()
_figures: dict[str, object] = {}
_since_drain: list[tuple[str, object]] = []


def record(name: str, value: object) -> None:
    """Record a figure. Whole numbers under one name add up (several tests try messages or count
    crashes); any other value replaces the previous one."""
    with _lock:
        _since_drain.append((name, value))
        previous = _figures.get(name)
        if _is_count(value) and _is_count(previous):
            _figures[name] = previous + value
        else:
            _figures[name] = value


def drain() -> list[tuple[str, object]]:
    """Every `record` call since the last drain, in order: what one test measured."""
    with _lock:
        calls = list(_since_drain)
        _since_drain.clear()
    return calls


def recorded() -> dict[str, object]:
    with _lock:
        return dict(_figures)


def summary_lines() -> list[str]:
    """The required figures first, in the issue's order, then any other; empty when nothing ran."""
    figures = recorded()
    if not figures:
        return []
    names = [*REQUIRED, *sorted(set(figures) - set(REQUIRED))]
    width = max(len(name) for name in names)
    return [f"{name:<{width}}  {figures.get(name, 'not measured in this run')}" for name in names]


def _is_count(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)

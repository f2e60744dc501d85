"""Shared fixtures: real Dovecot and SMTP servers for end-to-end tests."""

from __future__ import annotations

import os
import sys
from collections.abc import Generator, Iterator
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
if str(TESTS_DIR) not in sys.path:
    # Lets test modules import helpers such as mailservers and corpusdata under any import mode.
    sys.path.insert(0, str(TESTS_DIR))

from helpers.mailservers import Dovecot, Postfix, SmtpSink, find_dovecot, find_postfix  # noqa: E402
from helpers.pgserver import PostgresServer, driver_installed, find_postgres, shared_server  # noqa: E402

_LOG_START = pytest.StashKey[int]()

# The fault suite's figures, added up over every worker process and printed at the end.
pytest_plugins = ("helpers.figures_report",)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def dovecot_available() -> None:
    """Skip tests needing Dovecot when it is missing, but fail under CI=true.

    CI must never pass by silently skipping the end-to-end tests.
    """
    if find_dovecot() is None:
        message = "dovecot not installed: apt-get install dovecot-imapd dovecot-lmtpd"
        if _in_ci():
            pytest.fail(f"{message} (CI=true: end-to-end tests must not be skipped)")
        pytest.skip(message)


@pytest.fixture(scope="session")
def dovecot(dovecot_available: None) -> Iterator[Dovecot]:
    """One Dovecot for the whole session (startup ~0.1 s); tests get clean mailboxes via `imap`."""
    server = Dovecot()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def imap(dovecot: Dovecot, request: pytest.FixtureRequest) -> Dovecot:
    """The session Dovecot, running (an outage test may have stopped it), all mailboxes empty."""
    dovecot.start()
    for user in dovecot.users:
        dovecot.reset_user(user)
    request.node.stash[_LOG_START] = len(dovecot.log_text())
    return dovecot


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    """The session's throwaway PostgreSQL; skipped when missing, but a failure under CI=true."""
    missing = None
    if find_postgres() is None:
        missing = "PostgreSQL not installed: apt-get install postgresql"
    elif not driver_installed():
        missing = "psycopg not installed: pip install -e '.[test]'"
    if missing is not None:
        if _in_ci():
            pytest.fail(f"{missing} (CI=true: PostgreSQL tests must not be skipped)")
        pytest.skip(missing)
    return shared_server()


@pytest.fixture(scope="session")
def postfix(dovecot: Dovecot) -> Iterator[Postfix]:
    """A private Postfix delivering into the session Dovecot by LMTP; skipped when it is not
    installed or we are not root, but a failure under CI=true. Stopped with all its processes."""
    missing = None
    if find_postfix() is None:
        missing = "postfix not installed: ./scripts/setup (apt-get install postfix)"
    elif os.geteuid() != 0:
        missing = "postfix's master daemon needs root"
    if missing is not None:
        if _in_ci():
            pytest.fail(f"{missing} (CI=true: end-to-end tests must not be skipped)")
        pytest.skip(missing)
    server = Postfix(dovecot)
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A fresh SMTP capture server per test, stopped even when the test fails."""
    sink = SmtpSink()
    sink.start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Attach what Dovecot logged during a failed test, where the cause often is."""
    report = yield
    start = item.stash.get(_LOG_START, None)
    server = getattr(item, "funcargs", {}).get("imap")
    if report.failed and start is not None and isinstance(server, Dovecot):
        report.sections.append(("dovecot.log during test", server.log_text()[start:]))
    return report

"""The intake's loop: mail that lands while it works is handled before it waits, and in an outage
one log line per change of state and one alert to the admin after `[imap] alert_after` failures in
a row, however long the outage lasts."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from helpers.dbcheck import migrated_engine
from helpers.harness import customer_email
from imapclient.exceptions import LoginError
from pydantic import SecretStr
from sqlalchemy import Engine, select

from daemon.config import Config, Secrets, Settings
from daemon.inbound.intake import Intake
from daemon.runtime.service import Components, assemble
from daemon.storage import db
from daemon.storage.models import OutboxItem, Ticket

ADMIN = "sysadmin@example.com"


class FlakyInbox:
    """Refuses the login `failures` times, then works with an empty folder until told to stop."""

    supports_idle = False
    uidvalidity = 1

    def __init__(self, failures: int, stop: threading.Event) -> None:
        self.failures = failures
        self.stop = stop
        self.attempts = 0

    def connect(self) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise LoginError("[AUTHENTICATIONFAILED] Authentication failed.")

    def close(self) -> None:
        pass

    def waiting_uids(self) -> list[int]:
        return []

    def fetch(self, uids: Iterable[int]) -> dict[int, bytes]:
        return {}

    def move(self, uids: list[int], folder: str) -> None:
        pass

    def wait_for_mail(self, stop: threading.Event, timeout: float) -> None:
        self.stop.set()  # one good cycle is enough to see the recovery


class ArrivingInbox:
    """IDLE-capable folder where a second message lands while the first is being fetched, as when
    a customer writes while the daemon works through a backlog."""

    supports_idle = True
    uidvalidity = 1

    def __init__(self) -> None:
        self.folder = {1: customer_email("Pedido 1", "No ha llegado.", message_id="<one@example.net>")}
        self.arriving = {2: customer_email("Pedido 2", "Tampoco.", sender="luis@example.net",
                                           message_id="<two@example.net>")}
        self.waiting_when_idle: list[list[int]] = []

    def connect(self) -> None:
        pass

    def close(self) -> None:
        pass

    def waiting_uids(self) -> list[int]:
        return sorted(self.folder)

    def fetch(self, uids: Iterable[int]) -> dict[int, bytes]:
        fetched = {uid: self.folder[uid] for uid in uids}
        self.folder.update(self.arriving)
        self.arriving = {}
        return fetched

    def move(self, uids: list[int], folder: str) -> None:
        for uid in uids:
            del self.folder[uid]

    def wait_for_mail(self, stop: threading.Event, timeout: float) -> None:
        self.waiting_when_idle.append(sorted(self.folder))
        stop.set()


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real backoff doubles up to a minute; the behaviour under test is the same at 10 ms."""
    monkeypatch.setattr("daemon.inbound.intake._MAX_BACKOFF", 0.01)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = migrated_engine(tmp_path, "alerts.db")
    yield engine
    engine.dispose()


def _parts(engine: Engine, admin: str | None) -> Components:
    config = Config.model_validate({
        "shop": {"name": "Tienda", "address": "incidencias@example.com", "languages": ["es"],
                 "default_language": "es"},
        "imap": {"host": "127.0.0.1", "security": "none", "username": "u", "alert_after": 2},
        "smtp": {"host": "127.0.0.1", "security": "none"},
        "admin": {"address": admin},
    })
    settings = Settings(config=config, path=Path("config.toml"),
                        secrets=Secrets(imap_password=None, smtp_password=None,
                                        agent_secret=SecretStr("secret")))
    return assemble(settings, engine, db.session_factory(engine))


def _run(parts: Components, failures: int) -> Intake:
    stop = threading.Event()
    inbox = FlakyInbox(failures, stop)
    intake = Intake(parts.ingestor.config.imap, inbox, parts.ingestor, parts.sessions,  # type: ignore[arg-type]
                    stop)
    worker = threading.Thread(target=intake.run_forever)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive()
    return intake


def test_mail_that_arrives_during_a_cycle_is_handled_before_the_intake_waits(engine: Engine) -> None:
    parts = _parts(engine, None)
    stop = threading.Event()
    inbox = ArrivingInbox()
    intake = Intake(parts.ingestor.config.imap, inbox, parts.ingestor, parts.sessions,  # type: ignore[arg-type]
                    stop)

    intake.run_forever()

    assert inbox.waiting_when_idle == [[]], "the intake went idle with mail in the folder"
    with parts.sessions() as session:
        assert len(session.scalars(select(Ticket)).all()) == 2


def _intake_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "daemon.intake"]


def test_a_long_outage_sends_one_alert_and_logs_each_change_of_state_once(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="daemon.intake")
    parts = _parts(engine, ADMIN)
    intake = _run(parts, failures=8)
    with parts.sessions() as session:
        alerts = session.scalars(select(OutboxItem).where(OutboxItem.kind == "alert")).all()
    [alert] = alerts
    assert alert.recipients == ADMIN and alert.ticket_id is None
    assert b"AUTHENTICATIONFAILED" in alert.raw
    levels = [level for level, _ in _intake_lines(caplog)]
    assert levels == [logging.WARNING, logging.ERROR, logging.INFO], _intake_lines(caplog)
    assert "recovered after 8 failed attempt(s)" in _intake_lines(caplog)[-1][1]
    assert intake.consecutive_failures == 0 and intake.last_success_at is not None


def test_without_an_admin_address_the_alert_is_only_an_error_line(
        engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="daemon.intake")
    parts = _parts(engine, None)
    _run(parts, failures=2)
    with parts.sessions() as session:
        assert session.scalars(select(OutboxItem)).all() == []
    errors = [text for level, text in _intake_lines(caplog) if level == logging.ERROR]
    assert len(errors) == 1 and "no [admin] address" in errors[0]


def test_a_short_outage_below_the_threshold_alerts_nobody(engine: Engine) -> None:
    parts = _parts(engine, ADMIN)
    _run(parts, failures=1)
    with parts.sessions() as session:
        assert session.scalars(select(OutboxItem)).all() == []

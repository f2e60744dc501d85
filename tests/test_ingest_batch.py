"""Several messages in one transaction (`Ingestor.ingest_many`, what the intake does with a backlog):
a bad one is quarantined alone, database trouble leaves none of them, duplicates inside one batch
are recognised, and the intake moves a batch out of the inbox only after its commit."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import pytest
from helpers.dbcheck import migrated_engine
from helpers.harness import customer_email
from pydantic import SecretStr
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from daemon.config import Config, Secrets, Settings
from daemon.inbound import intake as intake_module
from daemon.inbound.intake import Intake, transactions
from daemon.runtime.service import assemble
from daemon.storage import db
from daemon.storage.models import Message, OutboxItem, RawMessage, Ticket
from daemon.tickets import router
from daemon.tickets.router import Ingestor, Source

NOW = datetime(2026, 3, 2, 10, 0)
UNPARSEABLE = b"Subject: no sender at all\r\n\r\nbody"


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return migrated_engine(tmp_path, "batch.db")


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return db.session_factory(engine)


def _settings() -> Settings:
    config = Config.model_validate({
        "shop": {"name": "Tienda", "address": "incidencias@example.com",
                 "languages": ["es", "fr", "en"], "default_language": "es"},
        "imap": {"host": "127.0.0.1", "security": "none", "username": "u"},
        "smtp": {"host": "127.0.0.1", "security": "none"},
    })
    return Settings(config=config, path=Path("config.toml"),
                    secrets=Secrets(imap_password=None, smtp_password=None,
                                    agent_secret=SecretStr("secret")))


@pytest.fixture
def ingestor(engine: Engine, sessions: sessionmaker[Session]) -> Ingestor:
    return assemble(_settings(), engine, sessions, lambda: NOW).ingestor


def _mail(n: int) -> bytes:
    return customer_email(f"Pedido {n}", f"El pedido {n} no ha llegado.",
                          sender=f"cliente{n}@example.net", message_id=f"<m{n}@example.net>")


def _counts(sessions: sessionmaker[Session]) -> tuple[int, int, int, int]:
    with sessions() as session:
        return tuple(session.scalar(select(func.count()).select_from(table)) or 0  # type: ignore[return-value]
                     for table in (RawMessage, Ticket, Message, OutboxItem))


def test_a_bad_message_in_a_batch_is_quarantined_alone_and_the_others_are_kept(
        ingestor: Ingestor, sessions: sessionmaker[Session]) -> None:
    outcomes = ingestor.ingest_many([(_mail(1), Source("INBOX", 1, 1)),
                                     (UNPARSEABLE, Source("INBOX", 1, 2)),
                                     (_mail(3), Source("INBOX", 1, 3))])
    assert [o.outcome for o in outcomes] == ["ticket", "quarantined", "ticket"]
    assert outcomes[0].new_ticket and outcomes[2].new_ticket
    with sessions() as session:
        quarantined = session.get_one(RawMessage, outcomes[1].raw_id)
        subjects = sorted(session.scalars(select(Ticket.subject)))
        raws = {r.uid: r.outcome for r in session.scalars(select(RawMessage))}
    assert quarantined.raw == UNPARSEABLE and "no sender" in (quarantined.error or "")
    assert subjects == ["Pedido 1", "Pedido 3"]
    assert raws == {1: "ticket", 2: "quarantined", 3: "ticket"}
    # Both customers acknowledged; this shop has no agents to notify.
    assert _counts(sessions)[3] == sum(o.queued for o in outcomes) == 2


def test_a_database_error_mid_batch_leaves_nothing_of_the_batch(
        ingestor: Ingestor, sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    real = router.detect_language
    calls = 0

    def failing_on_the_third(*args: object, **kwargs: object) -> str:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise OperationalError("INSERT", {}, Exception("disk I/O error"))
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(router, "detect_language", failing_on_the_third)
    with pytest.raises(OperationalError):
        ingestor.ingest_many([(_mail(n), Source("INBOX", 1, n)) for n in (1, 2, 3)])
    assert _counts(sessions) == (0, 0, 0, 0)
    # Handled again (the messages are still in the inbox), all of it is stored once.
    outcomes = ingestor.ingest_many([(_mail(n), Source("INBOX", 1, n)) for n in (1, 2, 3)])
    assert [o.outcome for o in outcomes] == ["ticket"] * 3
    assert _counts(sessions)[:2] == (3, 3)


def test_duplicates_inside_one_batch_are_recognised(
        ingestor: Ingestor, sessions: sessionmaker[Session]) -> None:
    same_id_other_bytes = customer_email("Pedido 1", "Reenviado por otro servidor.",
                                         sender="cliente1@example.net",
                                         message_id="<m1@example.net>")
    mail = _mail(1)  # built once: its Date header is the clock's, so a second build may differ
    first, again, resent = ingestor.ingest_many([(mail, Source("INBOX", 1, 1)),
                                                 (mail, Source("INBOX", 1, 2)),
                                                 (same_id_other_bytes, Source("INBOX", 1, 3))])
    assert first.outcome == "ticket" and first.new_ticket
    assert again.already_handled and again.raw_id == first.raw_id
    assert resent.outcome == "duplicate" and resent.ticket == first.ticket
    raws, tickets, messages, _ = _counts(sessions)
    assert (raws, tickets, messages) == (2, 1, 2)  # the customer's message and the acknowledgement
    with sessions() as session:
        kept = session.get_one(RawMessage, resent.raw_id)
        linked = session.scalars(select(Message.raw_id).where(Message.direction == "in")).all()
    assert kept.raw == same_id_other_bytes and kept.outcome == "duplicate"
    assert linked == [first.raw_id]


def test_a_reply_later_in_the_same_batch_joins_the_ticket_opened_earlier_in_it(
        ingestor: Ingestor, sessions: sessionmaker[Session]) -> None:
    reply = customer_email("Re: Pedido 1", "¿Alguna novedad?", sender="cliente1@example.net",
                           in_reply_to="<m1@example.net>", references=["<m1@example.net>"])
    opened, joined = ingestor.ingest_many([(_mail(1), Source()), (reply, Source())])
    assert opened.new_ticket and joined.ticket == opened.ticket and not joined.new_ticket


def test_transactions_are_bounded_by_bytes_and_keep_the_order(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intake_module, "TRANSACTION_BYTES", 10)
    messages = [(1, b"1234"), (2, b"1234"), (3, b"123456789012"), (4, b"1")]
    assert [[uid for uid, _ in group] for group in transactions(messages)] == [[1, 2], [3], [4]]


class RecordingInbox:
    """A folder of three messages that notes what was committed when each MOVE came."""

    supports_idle = False
    uidvalidity = 1

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self.sessions = sessions
        self.folder = {n: _mail(n) for n in (1, 2, 3)}
        self.folder[2] = UNPARSEABLE
        self.moves: list[tuple[list[int], str, int]] = []

    def waiting_uids(self) -> list[int]:
        return sorted(self.folder)

    def fetch(self, uids: Iterable[int]) -> dict[int, bytes]:
        return {uid: self.folder[uid] for uid in uids}

    def move(self, uids: list[int], folder: str) -> None:
        with self.sessions() as session:
            committed = session.scalar(select(func.count()).select_from(RawMessage)) or 0
        self.moves.append((uids, folder, committed))
        for uid in uids:
            del self.folder[uid]


def test_the_intake_ingests_a_fetch_in_one_transaction_and_moves_it_after_the_commit(
        engine: Engine, sessions: sessionmaker[Session]) -> None:
    settings = _settings()
    parts = assemble(settings, engine, sessions, lambda: NOW)
    inbox = RecordingInbox(sessions)
    batches: list[int] = []
    ingest_many = parts.ingestor.ingest_many

    def counting(batch: list[tuple[bytes, Source]]) -> list[router.Outcome]:
        batches.append(len(batch))
        return ingest_many(batch)

    parts.ingestor.ingest_many = counting  # type: ignore[method-assign]
    committed: list[int] = []
    intake = Intake(settings.config.imap, inbox, parts.ingestor, sessions,  # type: ignore[arg-type]
                    threading.Event(), on_committed=lambda: committed.append(_counts(sessions)[0]))
    report = intake.cycle()
    assert batches == [3] and committed == [3]
    assert report.handled == report.moved == 3 and report.quarantined == 1
    assert inbox.moves == [([1, 3], "Procesados", 3), ([2], "Cuarentena", 3)]
    assert inbox.folder == {}

"""Delivery from the outbox: everything due goes in one pass, a refused row is tried once, and a
claim strands nothing when its process dies."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from helpers.dbcheck import migrated_engine
from helpers.mailservers import SmtpSink
from helpers.outboxrows import delivered, queue_rows, sender_for
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from daemon.storage import db
from daemon.storage.models import OutboxItem, OutboxStatus, utcnow


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = migrated_engine(tmp_path, "outbox.db")
    yield engine
    engine.dispose()


def test_one_pass_sends_a_backlog_larger_than_its_batch_over_one_connection(
        engine: Engine, smtp_sink: SmtpSink) -> None:
    ids = queue_rows(db.session_factory(engine), 7)

    report = asyncio.run(sender_for(engine, smtp_sink).deliver_due(limit=3))

    assert report.sent == 7
    assert delivered(smtp_sink) == {message_id: 1 for message_id in ids}
    assert smtp_sink.logins == 1


def test_a_row_the_server_defers_is_tried_once_per_pass_even_ignoring_the_schedule(
        engine: Engine, smtp_sink: SmtpSink) -> None:
    queue_rows(db.session_factory(engine), 4)
    smtp_sink.data_reply = "451 4.3.0 Try later"

    report = asyncio.run(sender_for(engine, smtp_sink).deliver_due(limit=3, ignore_schedule=True))

    assert (report.sent, report.deferred) == (0, 4)
    with Session(engine) as session:
        assert set(session.scalars(select(OutboxItem.attempts))) == {1}
        assert set(session.scalars(select(OutboxItem.status))) == {OutboxStatus.PENDING}


def test_a_claim_whose_connection_dies_leaves_the_row_pending_for_the_next_claim(
        engine: Engine, smtp_sink: SmtpSink) -> None:
    first, _ = queue_rows(db.session_factory(engine), 2)
    sender = sender_for(engine, smtp_sink)
    claimed = sender._claim(0, ignore_schedule=False)
    assert claimed is not None and claimed[1].message_id == first

    claimed[0].close()  # the process died mid-send: its transaction goes with the connection

    again = sender._claim(0, ignore_schedule=False)
    assert again is not None and again[1].message_id == first
    again[0].close()
    with Session(engine) as session:
        row = session.scalars(select(OutboxItem).where(OutboxItem.message_id == first)).one()
        assert (row.status, row.attempts, row.sent_at) == (OutboxStatus.PENDING, 0, None)


def test_the_sent_mark_settles_the_claimed_row_and_the_next_claim_moves_past_it(
        engine: Engine, smtp_sink: SmtpSink) -> None:
    first, second = queue_rows(db.session_factory(engine), 2)
    sender = sender_for(engine, smtp_sink)
    claimed = sender._claim(0, ignore_schedule=False)
    assert claimed is not None

    sender._settle(*claimed, OutboxStatus.SENT)

    following = sender._claim(claimed[1].id, ignore_schedule=False)
    assert following is not None and following[1].message_id == second
    following[0].close()
    with Session(engine) as session:
        row = session.scalars(select(OutboxItem).where(OutboxItem.message_id == first)).one()
        assert (row.status, row.attempts, row.last_error) == (OutboxStatus.SENT, 1, None)
        assert row.sent_at is not None


def test_a_row_scheduled_later_is_claimed_only_when_the_schedule_is_ignored(
        engine: Engine, smtp_sink: SmtpSink) -> None:
    sessions = db.session_factory(engine)
    (later,) = queue_rows(sessions, 1)
    with sessions.begin() as session:
        session.execute(update(OutboxItem).values(next_attempt_at=utcnow() + timedelta(hours=1)))
    sender = sender_for(engine, smtp_sink)

    assert sender._claim(0, ignore_schedule=False) is None
    claimed = sender._claim(0, ignore_schedule=True)
    assert claimed is not None and claimed[1].message_id == later
    claimed[0].close()

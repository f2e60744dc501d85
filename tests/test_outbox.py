"""Delivery from the outbox: everything due goes in one pass, and a refused row is tried once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.dbcheck import migrated_engine
from helpers.mailservers import SmtpSink
from helpers.outboxrows import delivered, queue_rows, sender_for
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from daemon.storage import db
from daemon.storage.models import OutboxItem, OutboxStatus


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

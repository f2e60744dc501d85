"""PostgreSQL: the migrations build the models' schema, `db upgrade` is the upgrade path, and
instances sharing one outbox never send the same row."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from helpers.harness import cli, write_config
from helpers.mailservers import Dovecot, SmtpSink
from helpers.outboxrows import delivered, queue_rows, sender_for
from helpers.pgserver import PostgresServer, unique_name
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from daemon.storage import db
from daemon.storage.models import Base, OutboxItem, OutboxStatus, Ticket

ROWS = 60


@pytest.fixture
def database(postgres: PostgresServer) -> str:
    """A fresh database where a statement waiting for a lock fails after a while, never hangs."""
    name = unique_name("pg")
    url = postgres.create_database(name)
    postgres.execute(f"ALTER DATABASE {name} SET lock_timeout = '20s'")
    return url


@pytest.fixture
def engine(database: str) -> Iterator[Engine]:
    engine = db.make_engine(database)
    db.upgrade(engine)
    yield engine
    engine.dispose()


def test_migrations_build_exactly_the_schema_the_models_describe(engine: Engine) -> None:
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_a_database_from_the_first_release_upgrades_step_by_step_with_its_data(database: str) -> None:
    engine = db.make_engine(database)
    config = db._alembic_config(engine)
    revisions = [script.revision for script in ScriptDirectory.from_config(config).walk_revisions()]
    first, *later = reversed(revisions)
    try:
        command.upgrade(config, first)
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO tickets (status, customer_email, customer_name, subject, subject_key, language,"
                " created_at, updated_at) VALUES ('open', 'ana@example.net', 'Ana', 'Pedido', 'pedido', 'es',"
                " '2026-01-05 10:00', '2026-01-05 10:00')"))
        for revision in later:
            command.upgrade(config, revision)
        with Session(engine) as session:
            [old] = session.scalars(select(Ticket))
            kept = (old.customer_email, old.created_at, old.tags, old.status)
            session.add(Ticket(customer_email="luis@example.net", subject="Otro", language="es"))
            session.commit()
            ids = sorted(session.scalars(select(Ticket.id)))
        current = db.current_revision(engine)
    finally:
        engine.dispose()
    assert current == later[-1] == db.head_revision(engine)
    assert kept == ("ana@example.net", datetime(2026, 1, 5, 10), "", "open")
    assert ids == [1, 2], "the id sequence carried on past the old row"


def test_db_upgrade_brings_an_empty_database_to_head_and_run_refuses_an_outdated_one(
        tmp_path: Path, database: str, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config = write_config(tmp_path, imap, smtp_sink, database_url=database)

    refused = cli(config, "run", "--once", check=False)
    assert refused.returncode != 0 and "incidencias db upgrade" in refused.stderr
    assert cli(config, "db", "current", check=False).returncode == 1

    cli(config, "db", "upgrade")
    current = cli(config, "db", "current").stdout
    assert current.split()[1] == current.split()[3], current
    cli(config, "db", "upgrade")  # a second upgrade is a no-op, as after every restart
    assert cli(config, "run", "--once").returncode == 0


def test_two_instances_draining_one_outbox_send_every_row_exactly_once(
        database: str, engine: Engine, smtp_sink: SmtpSink) -> None:
    ids = queue_rows(db.session_factory(engine), ROWS)
    other_engine = db.make_engine(database)  # the other instance: its own connections
    first, second = sender_for(engine, smtp_sink), sender_for(other_engine, smtp_sink)

    async def both() -> tuple[int, int]:
        reports = await asyncio.gather(first.deliver_due(ignore_schedule=True),
                                       second.deliver_due(ignore_schedule=True))
        return reports[0].sent, reports[1].sent

    try:
        sent = asyncio.run(both())
    finally:
        other_engine.dispose()

    accepted = delivered(smtp_sink)
    assert sorted(accepted) == sorted(ids)
    assert set(accepted.values()) == {1}, "a row was sent by both instances"
    assert sum(sent) == ROWS
    with Session(engine) as session:
        assert set(session.scalars(select(OutboxItem.status))) == {OutboxStatus.SENT}


def test_a_row_another_instance_is_sending_is_passed_over_and_sent_once_it_lets_go(
        engine: Engine, smtp_sink: SmtpSink) -> None:
    sessions = db.session_factory(engine)
    held_id, free_id = queue_rows(sessions, 2)
    sender = sender_for(engine, smtp_sink)
    with sessions() as other_instance:
        other_instance.execute(select(OutboxItem).where(OutboxItem.message_id == held_id)
                               .with_for_update())
        report = asyncio.run(sender.deliver_due())
        assert (report.sent, report.deferred) == (1, 0)
        assert list(delivered(smtp_sink)) == [free_id]
        other_instance.rollback()  # the other instance died before sending: its lock goes with it

    again = asyncio.run(sender.deliver_due())

    assert again.sent == 1
    assert delivered(smtp_sink) == Counter({free_id: 1, held_id: 1})


def test_naive_utc_times_round_trip_whatever_the_server_time_zone(engine: Engine) -> None:
    written = datetime(2026, 3, 29, 1, 30)  # the hour Madrid (the test server's zone) skips
    with Session(engine) as session, session.begin():
        session.add(OutboxItem(kind="k", message_id="<tz@x>", mail_from="a@x", recipients="b@x",
                               raw=b"\x00\xffbytes", next_attempt_at=written))
    with Session(engine) as session:
        row = session.scalars(select(OutboxItem)).one()
    assert (row.next_attempt_at, row.next_attempt_at.tzinfo, row.raw) == (written, None, b"\x00\xffbytes")

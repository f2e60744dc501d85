"""Several shops' mailboxes in one configuration: config, threading and sweeps per mailbox, locks."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.utils import parseaddr
from pathlib import Path

import pytest
from alembic import command
from helpers.dbcheck import fresh_database_url
from helpers.harness import customer_email, start_daemon, stop_daemon, tickets, wait_until
from helpers.mailservers import Dovecot, SmtpSink
from helpers.multishop import DOS, DOS_ADDRESS, DOS_AGENTS, UNO, UNO_ADDRESS, UNO_AGENTS, write_two_shops
from helpers.pgserver import PostgresServer, unique_name
from sqlalchemy import select, text

from daemon.config import ConfigError, load_settings
from daemon.inbound.mailbox_lock import AdvisoryLock, SingleInstance, lock_key, make_lock
from daemon.inbound.mailbox_work import MailboxWorker, MailboxWorkers
from daemon.runtime.service import Components, build_mailboxes
from daemon.storage import db
from daemon.storage.models import OutboxItem, RawOutcome, Ticket
from daemon.tickets.router import Source

TWO_SHOPS = """
[smtp]
host = "127.0.0.1"
security = "none"
password = "smtp-secret"

[database]
url = "DATABASE_URL"

[agents]
addresses = ["ana@example.com"]
secret = "shared-agent-secret"

[templates]
directory = "shared-templates"

[escalation]
digest_hour = 23

[[mailboxes]]
name = "uno"

[mailboxes.shop]
name = "Tienda Uno"
address = "uno@example.com"
languages = ["es", "en"]

[mailboxes.imap]
host = "127.0.0.1"
security = "none"
username = "uno"
password_file = "uno-imap"

[[mailboxes]]
name = "dos-2"

[mailboxes.shop]
name = "Boutique Deux"
address = "dos@example.com"
languages = ["fr", "en"]
default_language = "fr"

[mailboxes.imap]
host = "127.0.0.1"
security = "none"
username = "dos"
password_file = "dos-imap"

[mailboxes.agents]
addresses = ["luc@example.com"]
language = "fr"
secret = "dos-agent-secret"

[mailboxes.templates]
directory = "dos-templates"
"""

MONDAY_10 = datetime(2026, 3, 2, 9, 0)  # 10:00 in Madrid, within the default customer hours


def _write(tmp_path: Path, text: str = TWO_SHOPS) -> Path:
    (tmp_path / "uno-imap").write_text("uno-password\n")
    (tmp_path / "dos-imap").write_text("dos-password\n")
    path = tmp_path / "config.toml"
    path.write_text(text.replace("DATABASE_URL", f"sqlite:///{tmp_path / 'shops.db'}"))
    return path


def _error(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(_write(tmp_path, text))
    return str(caught.value)


# --- configuration ---------------------------------------------------------------------------


def test_a_config_without_mailboxes_is_the_single_mailbox_default(tmp_path: Path) -> None:
    single = TWO_SHOPS.split("[[mailboxes]]")[0] + """
[shop]
name = "Tienda"
address = "tienda@example.com"

[imap]
host = "127.0.0.1"
security = "none"
username = "tienda"
password = "x"
"""
    settings = load_settings(_write(tmp_path, single))
    assert [box.config.mailbox for box in settings.each_mailbox()] == ["default"]
    assert settings.each_mailbox() == (settings,)


def test_each_mailbox_gets_its_own_shop_imap_agents_and_templates_and_shares_the_rest(
        tmp_path: Path) -> None:
    settings = load_settings(_write(tmp_path))
    uno, dos = settings.each_mailbox()
    assert (uno.config.mailbox, dos.config.mailbox) == ("uno", "dos-2")
    assert (uno.config.shop.address, dos.config.shop.address) == ("uno@example.com", "dos@example.com")
    assert (uno.config.imap.username, dos.config.imap.username) == ("uno", "dos")
    assert uno.secrets.imap_password is not None and dos.secrets.imap_password is not None
    assert uno.secrets.imap_password.get_secret_value() == "uno-password"
    assert dos.secrets.imap_password.get_secret_value() == "dos-password"
    # [agents] and [templates] default to the top-level ones; a mailbox may bring its own.
    assert uno.config.agents.addresses == ["ana@example.com"]
    assert dos.config.agents.addresses == ["luc@example.com"]
    assert uno.secrets.agent_secret is not None and dos.secrets.agent_secret is not None
    assert dos.secrets.agent_secret.get_secret_value() == "dos-agent-secret"
    assert uno.config.templates.directory == Path("shared-templates")
    assert dos.config.templates.directory == Path("dos-templates")
    # Everything else is one for the whole installation.
    assert uno.config.smtp == dos.config.smtp and uno.config.database == dos.config.database
    assert uno.secrets.smtp_password == dos.secrets.smtp_password
    assert settings.config.mailbox == "uno" and settings.for_mailbox("dos-2") == dos
    assert settings.for_mailbox("tres") is None


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (('name = "dos-2"', 'name = "Dos 2"'), "[mailboxes.2] name: expected lower-case letters"),
        (('name = "dos-2"', 'name = "uno"'), "[mailboxes]: mailbox name(s) ['uno'] used more than once"),
        (('host = "127.0.0.1"\nsecurity = "none"\nusername = "dos"', 'security = "none"\nusername = "dos"'),
         "[mailboxes.2.imap] host: Field required"),
        (('address = "uno@example.com"', 'address = "uno@example.com"\ncolour = "red"'),
         "[mailboxes.1.shop] colour: unknown key"),
        (('default_language = "fr"', 'default_language = "de"'),
         "[mailboxes.2.shop] default_language: 'de' is not in languages ['fr', 'en']"),
        (('secret = "dos-agent-secret"', ''),
         "[mailboxes.2.agents] secret_file: required when [mailboxes.2.agents] addresses are set"),
        (('password_file = "dos-imap"', 'password_file = "missing"'),
         "[mailboxes.2.imap] password_file: cannot read"),
        (('[agents]', '[shop]\nname = "x"\naddress = "x@example.com"\n\n[agents]'),
         "[shop] and [[mailboxes]]"),
    ],
)
def test_each_mailbox_mistake_names_the_mailbox_and_key(tmp_path: Path, change: tuple[str, str],
                                                         named: str) -> None:
    assert TWO_SHOPS.count(change[0]) == 1
    assert named in _error(tmp_path, TWO_SHOPS.replace(*change))


def test_a_broken_first_mailbox_is_reported_once_under_its_own_name(tmp_path: Path) -> None:
    message = _error(tmp_path, TWO_SHOPS.replace('address = "uno@example.com"', 'address = "nobody"'))
    assert "[mailboxes.1.shop] address" in message
    assert "[shop]" not in message


def test_the_cli_exits_2_on_a_mailbox_mistake(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from daemon.cli import main

    path = _write(tmp_path, TWO_SHOPS.replace('name = "dos-2"', 'name = "Dos"'))
    assert main(["-c", str(path), "tickets", "list"]) == 2
    assert "[mailboxes.2] name" in capsys.readouterr().err


# --- tickets stay in their mailbox -------------------------------------------------------------


@dataclass
class Clock:
    now: datetime = MONDAY_10

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def shops(tmp_path: Path) -> tuple[dict[str, Components], Clock]:
    clock = Clock()
    text = TWO_SHOPS.replace('directory = "shared-templates"', "").replace(
        '[mailboxes.templates]\ndirectory = "dos-templates"', "")
    parts = build_mailboxes(load_settings(_write(tmp_path, text)), clock)
    return {p.lifecycle.config.mailbox: p for p in parts}, clock


def _mailbox_of(parts: Components, number: int) -> str:
    with parts.sessions() as session:
        return session.get_one(Ticket, number).mailbox


def test_threading_never_joins_a_message_to_another_mailboxs_ticket(
        shops: tuple[dict[str, Components], Clock]) -> None:
    boxes, _ = shops
    first = customer_email("Pedido 77", "No ha llegado.", message_id="<first@example.net>",
                           to="uno@example.com")
    uno_ticket = boxes["uno"].ingestor.ingest(first).ticket
    assert uno_ticket is not None
    # The same customer writes to the other shop answering the first mail, with its tag and subject.
    crossing = customer_email(f"Re: [#{uno_ticket}] Pedido 77", "Et chez vous ?",
                              in_reply_to="<first@example.net>", references=["<first@example.net>"],
                              to="dos@example.com")
    dos_ticket = boxes["dos-2"].ingestor.ingest(crossing).ticket
    same_subject = customer_email("Pedido 77", "Encore moi.", to="dos@example.com")
    dos_again = boxes["dos-2"].ingestor.ingest(same_subject).ticket
    follow_up = customer_email("Re: Pedido 77", "¿Alguna novedad?", in_reply_to="<first@example.net>",
                               to="uno@example.com")
    uno_again = boxes["uno"].ingestor.ingest(follow_up).ticket

    assert dos_ticket is not None and dos_ticket != uno_ticket
    assert dos_again == dos_ticket
    assert uno_again == uno_ticket
    assert _mailbox_of(boxes["uno"], uno_ticket) == "uno"
    assert _mailbox_of(boxes["uno"], dos_ticket) == "dos-2"
    with boxes["uno"].sessions() as session:
        senders = {row.ticket_id: row.mail_from for row in session.scalars(
            select(OutboxItem).where(OutboxItem.kind == "acknowledgement"))}
    assert senders == {uno_ticket: "uno@example.com", dos_ticket: "dos@example.com"}


def test_each_mailbox_sweeps_only_its_own_tickets(shops: tuple[dict[str, Components], Clock]) -> None:
    boxes, clock = shops
    uno_ticket = boxes["uno"].ingestor.ingest(customer_email("Roto", "Llegó roto.")).ticket
    dos_ticket = boxes["dos-2"].ingestor.ingest(
        customer_email("Cassé", "Il est arrivé cassé.", to="dos@example.com")).ticket
    clock.now += timedelta(days=4)

    boxes["uno"].lifecycle.sweep()
    with boxes["uno"].sessions() as session:
        after_uno = {(row.ticket_id, row.kind) for row in session.scalars(
            select(OutboxItem).where(OutboxItem.kind.in_(["update", "reminder-unanswered"])))}
    boxes["dos-2"].lifecycle.sweep()
    with boxes["uno"].sessions() as session:
        after_both = {(row.ticket_id, row.kind) for row in session.scalars(
            select(OutboxItem).where(OutboxItem.kind.in_(["update", "reminder-unanswered"])))}

    assert after_uno == {(uno_ticket, "update"), (uno_ticket, "reminder-unanswered")}
    assert after_both == after_uno | {(dos_ticket, "update"), (dos_ticket, "reminder-unanswered")}


def test_a_quarantined_message_is_replayed_in_the_mailbox_it_came_from(
        tmp_path: Path, shops: tuple[dict[str, Components], Clock],
        capsys: pytest.CaptureFixture[str]) -> None:
    from daemon.cli import main

    boxes, _ = shops
    auto_reply = customer_email("Réponse automatique", "Je suis absente.", sender="claire@example.net",
                                in_reply_to="<question@example.net>", to="dos@example.com",
                                extra_headers={"Auto-Submitted": "auto-replied"})
    held = boxes["dos-2"].ingestor.ingest(auto_reply, Source("dos-2/INBOX", 7, 1))
    assert held.outcome == RawOutcome.QUARANTINED, "it answers nothing known yet"
    ticket = boxes["dos-2"].ingestor.ingest(customer_email(
        "Question", "Une question.", sender="claire@example.net", to="dos@example.com",
        message_id="<question@example.net>")).ticket

    assert main(["-c", str(tmp_path / "config.toml"), "quarantine", "replay", str(held.raw_id)]) == 0
    assert f"filed in ticket #{ticket}" in capsys.readouterr().out


def test_existing_tickets_belong_to_the_default_mailbox_after_the_upgrade(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    command.upgrade(db._alembic_config(engine), "0004")
    with engine.begin() as connection:
        connection.execute(text(
            "INSERT INTO tickets (status, customer_email, customer_name, subject, subject_key, "
            "language, created_at, updated_at, tags) VALUES ('open', 'a@example.net', '', 's', 's', "
            "'es', '2026-01-01', '2026-01-01', '')"))
    db.upgrade(engine)
    with engine.connect() as connection:
        assert connection.scalar(text("SELECT mailbox FROM tickets")) == "default"
    engine.dispose()


# --- locks -----------------------------------------------------------------------------------


def test_lock_keys_are_stable_so_every_version_and_machine_agree() -> None:
    assert lock_key("uno") == 6671272577714260612
    assert lock_key("default") != lock_key("uno")
    assert -2**63 <= lock_key("a-very-long-mailbox-name-of-forty-chars0") < 2**63


def test_on_sqlite_a_mailbox_is_always_this_instances(tmp_path: Path) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    lock = make_lock(engine, "uno")
    assert isinstance(lock, SingleInstance) and lock.acquire() and lock.held()


def test_one_holder_per_mailbox_and_a_dead_holder_hands_it_over(postgres: PostgresServer) -> None:
    engine = db.make_engine(postgres.create_database(unique_name()))
    first, second, other = (AdvisoryLock(engine, "uno"), AdvisoryLock(engine, "uno"),
                            AdvisoryLock(engine, "dos"))
    try:
        assert first.acquire()
        assert not second.acquire()
        assert other.acquire(), "another mailbox is independent"
        with engine.connect() as connection:
            key = lock_key("uno") & (2**64 - 1)
            killed = connection.scalar(text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' "
                "AND granted AND classid::bigint = :high AND objid::bigint = :low"),
                {"high": key >> 32, "low": key & (2**32 - 1)})
        assert killed == 1
        assert not first.held(), "the holder notices its connection is gone"
        assert second.acquire(), "the lock died with the connection"
        second.release()
        assert first.acquire(), "a released mailbox can be taken at once"
    finally:
        for lock in (first, second, other):
            lock.close()
        engine.dispose()


class FakeLock:
    """A mailbox lock whose owner the test decides."""

    def __init__(self) -> None:
        self.mailbox = "uno"
        self.free = False
        self.ours = False
        self.closed = False

    def acquire(self) -> bool:
        self.ours = self.ours or self.free
        return self.ours

    def held(self) -> bool:
        return self.ours

    def release(self) -> None:
        self.ours = False

    def close(self) -> None:
        self.closed = True


class FakeIntake:
    def __init__(self, stop: threading.Event, fail: bool = False) -> None:
        self.stop = stop
        self.fail = fail
        self.running = threading.Event()

    def run_forever(self) -> None:
        self.running.set()
        if self.fail:
            raise RuntimeError("IMAP server speaks nonsense")
        self.stop.wait()


def test_a_mailbox_is_worked_only_while_its_lock_is_held() -> None:
    lock = FakeLock()
    intakes: list[FakeIntake] = []

    def intake_for(stop: threading.Event) -> FakeIntake:
        intakes.append(FakeIntake(stop))
        return intakes[-1]

    async def scenario() -> None:
        worker = MailboxWorker(lock, intake_for, lifecycle=None)
        assert not await worker.claim(), "held by another instance"
        assert intakes == []
        lock.free = True
        assert await worker.claim()
        assert await asyncio.to_thread(intakes[0].running.wait, 10)
        assert await worker.claim() and len(intakes) == 1, "claiming again keeps the same intake"
        lock.ours = lock.free = False  # the lock connection dropped; someone else took it
        assert not await worker.claim()
        assert intakes[0].stop.is_set() and not worker.active
        lock.free = True
        assert await worker.claim() and len(intakes) == 2, "taken back when free again"
        await worker.close()
        assert intakes[1].stop.is_set() and lock.closed

    asyncio.run(scenario())


def test_an_intake_that_dies_on_its_own_is_reported_not_ignored() -> None:
    lock = FakeLock()
    lock.free = True

    async def scenario() -> None:
        worker = MailboxWorker(lock, lambda stop: FakeIntake(stop, fail=True), lifecycle=None)
        workers = MailboxWorkers([worker])
        await workers.claim()
        for _ in range(100):
            if not workers.healthy():
                break
            await asyncio.sleep(0.05)
        assert not workers.healthy()
        with pytest.raises(RuntimeError, match="speaks nonsense"):
            workers.check()
        with pytest.raises(RuntimeError, match="speaks nonsense"):
            await workers.close()
        assert lock.closed

    asyncio.run(scenario())


# --- one daemon, two shops -------------------------------------------------------------------


def _sender(raw: bytes) -> str:
    return parseaddr(str(message_from_bytes(raw, policy=policy.default)["From"]))[1]


def test_one_daemon_answers_each_shops_customers_from_that_shop(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config = write_two_shops(tmp_path, imap, smtp_sink, fresh_database_url(tmp_path))
    imap.deliver("incidencias", customer_email("Paquete perdido", "No ha llegado mi paquete.",
                                               sender="maria@example.net", to=UNO_ADDRESS))
    daemon = start_daemon(config, tmp_path / "daemon.log")
    try:
        imap.deliver("tienda2", customer_email("Colis perdu", "Mon colis n'est pas arrivé.",
                                               sender="claire@example.net", name="Claire",
                                               to=DOS_ADDRESS))
        # Two acknowledgements, three notifications (uno: agent1 and agent2; dos: agent2).
        smtp_sink.wait_for(5, timeout=30)
        wait_until(lambda: imap.folder_uids("tienda2", "INBOX") == [], 10, "tienda2's INBOX empty")
    finally:
        assert stop_daemon(daemon) == 0
    found = {t["mailbox"]: t for t in tickets(config)}
    assert set(found) == {UNO, DOS}
    assert found[UNO]["customer"] == "maria@example.net" and found[UNO]["language"] == "es"
    assert found[DOS]["customer"] == "claire@example.net" and found[DOS]["language"] == "fr"
    acks = {m.rcpt_tos[0]: m for m in smtp_sink.messages
            if m.rcpt_tos in (["maria@example.net"], ["claire@example.net"])}
    assert _sender(acks["maria@example.net"].data) == UNO_ADDRESS
    assert _sender(acks["claire@example.net"].data) == DOS_ADDRESS
    notified = sorted((r, _sender(m.data)) for m in smtp_sink.messages for r in m.rcpt_tos
                      if r in UNO_AGENTS + DOS_AGENTS)
    assert notified == sorted([(a, UNO_ADDRESS) for a in UNO_AGENTS]
                              + [(a, DOS_ADDRESS) for a in DOS_AGENTS])
    assert len(imap.folder_uids("incidencias", "Procesados")) == 1
    assert len(imap.folder_uids("tienda2", "Procesados")) == 1

"""Nothing is lost: the whole corpus goes through, and SIGKILL at any point costs nothing."""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from pathlib import Path

from corpusdata import corpus_messages
from dbcheck import DatabaseView
from harness import (
    SHOP_USER,
    customer_email,
    run_once,
    start_daemon,
    to_customers,
    wait_until,
    write_config,
)
from mailservers import Dovecot, SmtpSink, to_crlf

from daemon.models import RawMessage


def test_every_corpus_message_ends_in_a_ticket_or_in_quarantine_with_its_raw_bytes_kept(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    corpus = corpus_messages()
    raws = [to_crlf(m.file.read_bytes()) for m in corpus]
    imap.append_many(SHOP_USER, raws)
    config = write_config(tmp_path, imap, smtp_sink)

    result = run_once(config)

    db = DatabaseView.for_config_dir(tmp_path)
    try:
        rows = db.raw_rows()
        outcomes = db.raw_outcomes()
    finally:
        db.close()
    outcome_of = {row.raw: row.outcome for row in rows}
    # Compare with what the server hands out: Dovecot itself normalises a few malformed line ends.
    processed = imap.fetch_all(SHOP_USER, "Procesados")
    quarantined = imap.fetch_all(SHOP_USER, "Cuarentena")
    assert imap.folder_uids(SHOP_USER, "INBOX") == []
    assert len(processed) + len(quarantined) == len(raws)
    assert all(outcome_of.get(raw) == "quarantined" for raw in quarantined)
    assert all(outcome_of.get(raw) in ("ticket", "duplicate") for raw in processed)
    assert all(row.ticket_id is not None for row in rows if row.outcome != "quarantined")
    assert all(row.error for row in rows if row.outcome == "quarantined")
    assert result.returncode == 0
    print(f"corpus: {len(raws)} messages → {dict(outcomes)}; stderr lines: "
          f"{len(result.stderr.splitlines())}")


def _backlog(new: int, replies: int) -> tuple[list[bytes], set[str]]:
    """`new` first messages from distinct customers, then replies to some of them."""
    raws = []
    for i in range(new):
        raws.append(customer_email(f"Pedido {i} incompleto", f"Falta un artículo del pedido {i}.",
                                   sender=f"cliente{i}@example.net", name=f"Cliente {i}",
                                   message_id=f"<first-{i}@example.net>"))
    for j in range(replies):
        i = j % new
        raws.append(customer_email(f"Re: Pedido {i} incompleto", "Otra cosa más.",
                                   sender=f"cliente{i}@example.net",
                                   message_id=f"<reply-{j}@example.net>",
                                   in_reply_to=f"<first-{i}@example.net>",
                                   references=[f"<first-{i}@example.net>"]))
    ids = {f"first-{i}@example.net" for i in range(new)} | {
        f"reply-{j}@example.net" for j in range(replies)}
    return raws, ids


def test_sigkill_at_several_points_loses_nothing_and_sends_no_acknowledgement_twice(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    new, replies = 120, 80
    raws, ids = _backlog(new, replies)
    imap.append_many(SHOP_USER, raws)
    config = write_config(tmp_path, imap, smtp_sink)
    db = DatabaseView.for_config_dir(tmp_path)
    kills = 0
    try:
        for threshold in (1, 30, 70, 110, 150, 190):
            daemon = start_daemon(config, tmp_path / f"daemon-{threshold}.log")

            def reached(limit: int = threshold, process: subprocess.Popen[bytes] = daemon) -> bool:
                return _stored(db) >= limit or process.poll() is not None

            try:
                wait_until(reached, 60, f"{threshold} messages stored")
            finally:
                if daemon.poll() is None:
                    daemon.send_signal(signal.SIGKILL)
                    kills += 1
                daemon.wait(10)
        run_once(config)
        inbound = db.inbound_message_ids()
        acks = db.outbox_by_kind("acknowledgement")
    finally:
        db.close()

    assert kills >= 4, "the daemon finished before it could be killed often enough"
    assert set(inbound) == ids and all(n == 1 for n in inbound.values())
    assert imap.folder_uids(SHOP_USER, "INBOX") == []
    assert len(acks) == new and len({a.ticket_id for a in acks}) == new
    assert all(a.status == "sent" for a in acks)
    customer_mail = to_customers(smtp_sink)
    delivered = Counter(m.message["Message-ID"] for m in customer_mail)
    per_ticket = Counter(m.message["X-Incidencias-Ticket"] for m in customer_mail)
    distinct_per_ticket: dict[str, set[str]] = {}
    for m in customer_mail:
        distinct_per_ticket.setdefault(m.message["X-Incidencias-Ticket"], set()).add(
            m.message["Message-ID"])
    resent_identical = sum(n - 1 for n in delivered.values())
    print(f"SIGKILL test: {kills} kills, {len(inbound)} messages in tickets, {len(delivered)} "
          f"acknowledgements, identical resends after a kill: {resent_identical}")
    assert len(per_ticket) == new, "an acknowledgement is missing"
    assert all(len(v) == 1 for v in distinct_per_ticket.values()), "a ticket got two different acks"
    assert resent_identical <= kills


def _stored(db: DatabaseView) -> int:
    try:
        return db.count(RawMessage)
    except Exception:
        return 0


def test_daemon_stops_cleanly_on_sigterm_without_losing_the_backlog(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    raws, ids = _backlog(60, 0)
    imap.append_many(SHOP_USER, raws)
    config = write_config(tmp_path, imap, smtp_sink)
    db = DatabaseView.for_config_dir(tmp_path)
    log = tmp_path / "daemon.log"
    try:
        daemon = start_daemon(config, log)
        wait_until(lambda: _stored(db) >= 10, 60, "some messages stored")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(10) == 0, log.read_text()
        run_once(config)
        assert set(db.inbound_message_ids()) == ids
    finally:
        db.close()
        if daemon.poll() is None:
            daemon.kill()
    assert imap.folder_uids(SHOP_USER, "INBOX") == []

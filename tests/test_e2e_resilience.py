"""Nothing is lost: the whole corpus goes through, and SIGTERM leaves no backlog behind.

SIGKILL at random points is tests/test_e2e_crashes.py.
"""

from __future__ import annotations

import signal
from pathlib import Path

from helpers.corpusdata import corpus_messages
from helpers.dbcheck import DatabaseView
from helpers.figures import record
from helpers.harness import (
    SHOP_USER,
    customer_email,
    run_once,
    start_daemon,
    wait_until,
    write_config,
)
from helpers.mailservers import Dovecot, SmtpSink, to_crlf

from daemon.storage.models import RawMessage


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
    record("messages tried", len(raws))
    record("messages lost", len(raws) - len(processed) - len(quarantined))
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

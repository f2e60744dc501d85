"""Logs: one line per event naming the ticket, JSON on request, never a secret or a message body."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from helpers.harness import SHOP_USER, cli, customer_email, write_config
from helpers.mailservers import Dovecot, SmtpSink

from daemon.runtime.logs import JournalFormatter, JsonFormatter, stderr_is_journal


def _record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("daemon.ingest", level, __file__, 1, message, None, None)


def test_json_lines_carry_the_ticket_number_as_a_field() -> None:
    line = json.loads(JsonFormatter().format(_record("ticket=42 opened, acknowledgement queued")))
    assert line["ticket"] == 42
    assert line["level"] == "info"
    assert "ticket" not in json.loads(JsonFormatter().format(_record("IMAP connected")))


def test_journal_lines_start_with_the_syslog_priority_on_every_line() -> None:
    formatter = JournalFormatter("%(levelname)s %(message)s")
    assert formatter.format(_record("x", logging.WARNING)) == "<4>WARNING x"
    assert formatter.format(_record("a\nb", logging.ERROR)) == "<3>ERROR a\n<3>b"


def test_stderr_counts_as_the_journal_only_when_journal_stream_names_it() -> None:
    assert not stderr_is_journal({})
    assert not stderr_is_journal({"JOURNAL_STREAM": "1:1"})


def test_a_run_logs_json_events_with_tickets_and_no_secret_or_body_at_info(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    body_marker = "Mi número de tarjeta es 4111-1111"
    imap.append(SHOP_USER, customer_email("Pedido 1234", body_marker))
    config = write_config(tmp_path, imap, smtp_sink)

    result = cli(config, "--log-format", "json", "run", "--once")

    events = [json.loads(line) for line in result.stderr.splitlines()]
    opened = [e for e in events if "opened" in e["message"]]
    assert opened and opened[0]["ticket"] == 1
    assert all({"time", "level", "logger", "message"} <= set(e) for e in events)
    for secret in (imap.password, smtp_sink.password, "test-agent-secret", body_marker, "4111"):
        assert secret not in result.stderr

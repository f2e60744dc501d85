"""The Prometheus endpoint: scraped from the real daemon while it handles mail and the SMTP server balks."""

from __future__ import annotations

import math
import socket
import urllib.request
from pathlib import Path

import pytest
from helpers.harness import SHOP_USER, customer_email, start_daemon, stop_daemon, wait_until, write_config
from helpers.mailservers import Dovecot, SmtpSink
from prometheus_client.parser import text_string_to_metric_families

from daemon.config import MetricsConfig, listen_address


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_listen_accepts_host_port_and_bracketed_ipv6() -> None:
    assert listen_address("127.0.0.1:9101") == ("127.0.0.1", 9101)
    assert listen_address("[::1]:9101") == ("::1", 9101)
    assert listen_address("localhost:9101") == ("localhost", 9101)
    for wrong in ("127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "::1:9101"):
        with pytest.raises(ValueError):
            listen_address(wrong)


def test_metrics_on_a_non_loopback_address_are_refused_unless_allowed() -> None:
    with pytest.raises(ValueError, match="allow_remote"):
        MetricsConfig(listen="0.0.0.0:9101")
    with pytest.raises(ValueError, match="allow_remote"):
        MetricsConfig(listen="metrics.example.com:9101")
    assert MetricsConfig(listen="0.0.0.0:9101", allow_remote=True).address == ("0.0.0.0", 9101)
    assert MetricsConfig().address is None


def test_scrape_reports_messages_tickets_outbox_imap_freshness_and_scheduler_lag(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    smtp_sink.data_reply = "451 4.3.0 Try later"
    imap.append(SHOP_USER, customer_email("Pedido roto", "El jarrón llegó roto."))
    imap.append(SHOP_USER, customer_email("Fuera de la oficina", "Vuelvo el lunes.",
                                          sender="ausente@example.net",
                                          extra_headers={"Auto-Submitted": "auto-replied"}))
    port = _free_port()
    config = write_config(tmp_path, imap, smtp_sink,
                          extra=f'\n[metrics]\nlisten = "127.0.0.1:{port}"\n')
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    try:
        def handled_both() -> bool:
            try:
                values = _scrape(port)
            except OSError:
                return False
            return sum(v for (name, _), v in values.items()
                       if name == "incidencias_messages_handled_total") == 2 and values.get(
                ("incidencias_send_failures_total", (("reason", "deferred"),)), 0) > 0

        wait_until(handled_both, 30, "both messages handled and a deferred send", interval=0.3)
        metrics = _scrape(port)
    finally:
        assert stop_daemon(daemon) == 0, log.read_text()

    def value(name: str, **labels: str) -> float:
        return metrics[(name, tuple(sorted(labels.items())))]

    assert value("incidencias_messages_handled_total", outcome="ticket") == 1
    assert value("incidencias_messages_handled_total", outcome="quarantined") == 1
    assert value("incidencias_messages_handled_total", outcome="duplicate") == 0
    assert value("incidencias_tickets", status="open") == 1
    assert value("incidencias_tickets", status="closed") == 0
    # The acknowledgement and one notification per agent wait, the server having said 451.
    assert value("incidencias_outbox_pending") == 3
    assert value("incidencias_outbox_failed") == 0
    assert 0 <= value("incidencias_outbox_oldest_pending_seconds") < 60
    assert value("incidencias_send_failures_total", reason="deferred") >= 1
    assert value("incidencias_send_failures_total", reason="refused") == 0
    assert ("incidencias_emails_sent_total", (("kind", "acknowledgement"),)) not in metrics
    since = value("incidencias_imap_seconds_since_success")
    assert not math.isinf(since) and 0 <= since < 60
    assert value("incidencias_scheduler_lag_seconds", job="lifecycle-sweep") >= 0


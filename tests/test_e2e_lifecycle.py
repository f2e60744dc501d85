"""Updates on a schedule and closing with a code, end to end with intervals in seconds."""

from __future__ import annotations

import re
import time
from pathlib import Path

from helpers.harness import (
    SHOP_USER,
    agent_reply,
    cli,
    customer_email,
    run_once,
    ticket,
    tickets,
    to_agent,
    to_customers,
    write_config,
)
from helpers.mailservers import Dovecot, SmtpSink

ALWAYS_OPEN = 'hours = "00:00-24:00"\ndays = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]'


def _kinds(sink: SmtpSink) -> list[str]:
    """Customer mail in order, by its Auto-Submitted value ("human" when an agent wrote it)."""
    return [str(m.message["Auto-Submitted"] or "human") for m in to_customers(sink)]


def test_updates_keep_the_interval_restart_on_agent_replies_pause_on_wait_and_catch_up_once(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    every = 10.0
    config = write_config(tmp_path, imap, smtp_sink, updates_every=f"{every:g}s",
                          updates=ALWAYS_OPEN)
    imap.append(SHOP_USER, customer_email("Paquete perdido", "No me ha llegado el paquete."))
    started = time.monotonic()  # the acknowledgement's time, as the daemon records it, is later
    run_once(config)
    acknowledged = time.monotonic()
    [number] = [t["id"] for t in tickets(config)]
    assert _kinds(smtp_sink) == ["auto-replied"]

    run_once(config)
    # Each run is a new process; on a loaded machine one can take seconds. The interval can only
    # be proved unelapsed for a run that ended before it could have elapsed.
    if time.monotonic() < started + every:
        assert len(to_customers(smtp_sink)) == 1, "an update came sooner than the interval"

    time.sleep(max(0.0, acknowledged + every + 0.3 - time.monotonic()))
    run_once(config)
    assert _kinds(smtp_sink) == ["auto-replied", "auto-generated"]

    time.sleep(2.5 * every)  # the daemon is "stopped" across two due times
    run_once(config)
    updated = time.monotonic()
    assert _kinds(smtp_sink).count("auto-generated") == 2, "overdue work must be sent once"

    # Halfway to the next update an agent answers; when that update would have been due, none
    # is, since the answer restarted the clock.
    time.sleep(every / 2)
    notification = to_agent(smtp_sink, "agent1@example.com")[0]
    imap.append(SHOP_USER, agent_reply(notification, "agent1@example.com",
                                  "Hemos abierto una reclamación con la agencia."))
    started = time.monotonic()
    run_once(config)
    assert _kinds(smtp_sink)[-1] == "human"
    time.sleep(max(0.0, updated + every + 0.3 - time.monotonic()))
    run_once(config)
    if time.monotonic() < started + every:
        assert _kinds(smtp_sink).count("auto-generated") == 2, "an agent reply restarts the clock"

    imap.append(SHOP_USER, agent_reply(notification, "agent1@example.com", "#wait 1d"))
    run_once(config)
    assert ticket(config, number)["wait_until"] is not None
    time.sleep(every + 0.5)
    run_once(config)
    assert _kinds(smtp_sink).count("auto-generated") == 2, "#wait pauses updates"


def test_close_from_a_pool_sends_one_closing_email_with_the_code(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    pool = tmp_path / "codes.txt"
    pool.write_text("# codes made in the shop\nPRIMAVERA-7XK2\n")
    config = write_config(tmp_path, imap, smtp_sink, closing=f'discount_provider = "pool"\n'
                                                             f'pool_file = "{pool}"')
    imap.append(SHOP_USER, customer_email("Jarrón roto", "Llegó roto."))
    run_once(config)
    notification = to_agent(smtp_sink, "agent1@example.com")[0]
    smtp_sink.clear()
    imap.append(SHOP_USER, agent_reply(notification, "agent1@example.com",
                                  "#cerrar Te enviamos uno nuevo hoy mismo."))
    run_once(config)
    [closing] = to_customers(smtp_sink)
    text = closing.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "PRIMAVERA-7XK2" in text and "Te enviamos uno nuevo hoy mismo." in text
    [closed] = tickets(config)
    assert closed["status"] == "closed" and closed["discount_code"] == "PRIMAVERA-7XK2"


def test_closing_from_the_shell_issues_a_generated_code_that_the_export_lists(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config = write_config(tmp_path, imap, smtp_sink, closing='code_prefix = "GRACIAS"')
    imap.append(SHOP_USER, customer_email("Pedido tarde", "Mi pedido no llega."))
    run_once(config)
    [opened] = tickets(config)
    smtp_sink.clear()
    said = cli(config, "tickets", "close", str(opened["id"]), "--discount", "20").stdout
    found = re.search(r"with discount code (GRACIAS-\w+);", said)
    assert found is not None, said
    code = found.group(1)
    run_once(config)
    [closing] = to_customers(smtp_sink)
    text = closing.message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert code in text and "20" in text
    export = cli(config, "discounts", "export").stdout.splitlines()
    assert export[0] == "code,percent,valid_until,ticket,issued_at"
    assert export[1].startswith(f"{code},20,") and f",{opened['id']}," in export[1]

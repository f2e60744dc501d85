"""`incidencias problems …` through the real command line: link, keywords, broadcast, unlink, close."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from helpers.harness import SHOP_USER, cli, customer_email, run_once, tickets, to_customers, write_config
from helpers.mailservers import Dovecot, SmtpSink


def _json(config: Path, *args: str) -> Any:
    return json.loads(cli(config, *args, "--json").stdout)


def test_the_problems_commands_link_tell_everyone_and_close_from_the_command_line(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config = write_config(tmp_path, imap, smtp_sink)
    for sender, name, subject, body in (
            ("ana@example.net", "Ana Gil", "Pedido sin llegar", "Mi pedido no llega, ¿qué pasa?"),
            ("luc@example.fr", "Luc Petit", "Colis en retard", "Mon colis n'est pas arrivé hier."),
            ("bo@example.org", "Bo Lee", "Late parcel", "My parcel is late, where is it now?")):
        imap.append(SHOP_USER, customer_email(subject, body, sender=sender, name=name))
    run_once(config)
    numbers = {t["customer"]: t["id"] for t in tickets(config)}
    spanish, french, english = (numbers[a] for a in ("ana@example.net", "luc@example.fr",
                                                     "bo@example.org"))

    assert cli(config, "problems", "link", "Bad_Name", "1", check=False).returncode == 2
    assert cli(config, "problems", "link", "retrasos", "999", check=False).returncode == 1
    out = cli(config, "problems", "link", "retrasos", str(spanish), str(french), str(english),
              "--title", "Retrasos de la transportista", "--keywords", "retraso, transportista")
    assert "linked 3 ticket(s)" in out.stdout
    shown = _json(config, "problems", "show", "retrasos")
    assert shown["title"] == "Retrasos de la transportista"
    assert shown["keywords"] == ["retraso", "transportista"]
    assert sorted(t["id"] for t in shown["tickets"]) == sorted(numbers.values())
    cli(config, "problems", "keywords", "retrasos", "seur, huelga")
    assert _json(config, "problems", "show", "retrasos")["keywords"] == ["seur", "huelga"]

    message = tmp_path / "message.txt"
    message.write_text("[es]\nEl envío sale mañana.\n\n[fr]\nLe colis part demain.\n")
    refused = cli(config, "problems", "broadcast", "retrasos", "--message-file", str(message),
                  "--agent", "stranger@example.com", check=False)
    assert refused.returncode == 1 and "not one of the mailbox's agents" in refused.stderr
    message_bad = tmp_path / "bad.txt"
    message_bad.write_text("#asignar agent1\n\nHola a todos.")
    refused = cli(config, "problems", "broadcast", "retrasos", "--message-file", str(message_bad),
                  "--agent", "agent1@example.com", check=False)
    assert refused.returncode == 1 and "#asignar" in refused.stderr
    smtp_sink.clear()
    out = cli(config, "problems", "broadcast", "retrasos", "--message-file", str(message),
              "--agent", "agent1@example.com")
    assert "3 mail(s) to customers queued" in out.stdout
    assert f"#{english} (en got [es])" in out.stdout
    run_once(config)
    smtp_sink.wait_for(5)
    assert sorted(m.rcpt_tos[0] for m in to_customers(smtp_sink)) == sorted(numbers)
    [to_luc] = [m for m in to_customers(smtp_sink) if m.rcpt_tos == ["luc@example.fr"]]
    assert "Le colis part demain." in to_luc.data.decode("utf-8", "replace").replace("=\r\n", "")

    cli(config, "problems", "unlink", str(english))
    assert _json(config, "tickets", "show", str(english))["problem"] is None
    assert cli(config, "problems", "unlink", str(english), check=False).returncode == 1
    out = cli(config, "problems", "close", "retrasos", "--discount", "20")
    assert "2 ticket(s) closed" in out.stdout
    listing = _json(config, "problems", "list")
    assert [(p["name"], p["status"], p["ticket_count"], p["open_ticket_count"])
            for p in listing] == [("retrasos", "closed", 2, 0)]
    assert _json(config, "tickets", "show", str(english))["status"] == "open"
    codes = {_json(config, "tickets", "show", str(n))["discount_code"] for n in (spanish, french)}
    assert len(codes) == 2 and None not in codes
    assert "already closed" in cli(config, "problems", "close", "retrasos", check=False).stderr
    assert "retrasos" in cli(config, "problems", "list").stdout

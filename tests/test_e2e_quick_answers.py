"""Quick answers end to end: agents answer with one line from their mail client (Dovecot + SMTP sink)."""

from __future__ import annotations

import json
from email.utils import make_msgid
from pathlib import Path

from helpers.harness import (
    SHOP_ADDRESS,
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
from helpers.mailservers import CapturedMail, Dovecot, SmtpSink

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"
SPANISH = ("Hola, hice un pedido hace dos semanas y todavía no me ha llegado. El seguimiento "
           "no se mueve desde el martes. ¿Me podéis decir qué pasa?")
FRENCH = ("Bonjour, j'ai reçu ma commande ce matin mais le vase est arrivé cassé, le carton était "
          "tout écrasé. Que pouvez-vous faire pour moi ?")


def _text(mail: CapturedMail) -> str:
    body = mail.message.get_body(("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def _open_two_tickets(config: Path, imap: Dovecot, sink: SmtpSink) -> dict[str, int]:
    imap.append(SHOP_USER, customer_email("Pedido sin llegar", SPANISH, message_id="<es@example.net>"))
    imap.append(SHOP_USER, customer_email("Vase cassé", FRENCH, sender="jeanne@example.fr",
                                          name="Jeanne Martin", message_id="<fr@example.fr>"))
    run_once(config)
    sink.wait_for(6)  # two acknowledgements, two notifications for each of the two agents
    numbers = {t["customer"]: t["id"] for t in tickets(config)}
    assert ticket(config, numbers["maria@example.net"])["language"] == "es"
    assert ticket(config, numbers["jeanne@example.fr"])["language"] == "fr"
    return {"es": numbers["maria@example.net"], "fr": numbers["jeanne@example.fr"]}


def _notification(sink: SmtpSink, agent: str, number: int) -> CapturedMail:
    [found] = [m for m in to_agent(sink, agent) if f"[#{number}]" in str(m.message["Subject"])]
    return found


def test_each_customer_gets_the_answer_in_their_language_in_their_thread_signed_by_the_agent(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config = write_config(tmp_path, imap, smtp_sink)
    numbers = _open_two_tickets(config, imap, smtp_sink)
    to_es = _notification(smtp_sink, "agent1@example.com", numbers["es"])
    to_fr = _notification(smtp_sink, "agent2@example.com", numbers["fr"])
    smtp_sink.clear()
    imap.append(SHOP_USER, agent_reply(to_es, "agent1@example.com", "#answer delay"))
    imap.append(SHOP_USER, agent_reply(to_fr, "agent2@example.com", "#réponse damaged", name="Claire Petit"))
    run_once(config)

    by_customer = {m.rcpt_tos[0]: m for m in to_customers(smtp_sink)}
    assert sorted(by_customer) == ["jeanne@example.fr", "maria@example.net"]
    maria, jeanne = by_customer["maria@example.net"], by_customer["jeanne@example.fr"]
    for mail, number, own_id in ((maria, numbers["es"], "<es@example.net>"),
                                 (jeanne, numbers["fr"], "<fr@example.fr>")):
        assert mail.rcpt_tos == [mail.rcpt_tos[0]] and SHOP_ADDRESS in str(mail.message["From"])
        assert mail.message["In-Reply-To"] == own_id
        assert f"[#{number}]" in str(mail.message["Subject"])
        assert b"agent1@" not in mail.data and b"agent2@" not in mail.data
    assert maria.message["Content-Language"] == "es"
    assert _text(maria).startswith("Hola, María García:\n\nTu pedido va con retraso")
    assert "\n-- \nAna Ruiz · Tienda Ejemplo\n" in _text(maria)
    assert jeanne.message["Content-Language"] == "fr"
    assert _text(jeanne).startswith("Bonjour Jeanne Martin,\n\nNous sommes désolés que votre "
                                    "commande soit arrivée abîmée.")
    assert "\n-- \nClaire Petit · Tienda Ejemplo\n" in _text(jeanne)
    assert "#r" not in _text(jeanne) and "#answer" not in _text(maria)
    assert to_agent(smtp_sink, "agent2@example.com"), "the other agent gets a copy"
    for language, name in (("es", "delay"), ("fr", "damaged")):
        sent = [m for m in ticket(config, numbers[language])["messages"] if m["direction"] == "out"]
        assert [m["answers"] for m in sent] == [[], [name]]


def test_a_missing_language_an_unknown_name_or_a_failing_answer_reach_only_the_agent(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    overrides = tmp_path / "templates"
    (overrides / "es" / "answers").mkdir(parents=True)
    (overrides / "fr" / "answers").mkdir(parents=True)
    (overrides / "es" / "answers" / "solo-es.j2").write_text("Solo en español.\n")
    (overrides / "fr" / "answers" / "rappel.j2").write_text(
        "Nous vous écrivons le {{ promised_date | long_date('fr') }}.\n")
    config = write_config(tmp_path, imap, smtp_sink,
                          extra=f'\n[templates]\ndirectory = "{overrides}"\n')
    numbers = _open_two_tickets(config, imap, smtp_sink)
    notification = _notification(smtp_sink, "agent1@example.com", numbers["fr"])
    smtp_sink.clear()
    for body in ("#answer solo-es", "#answer damagd", "#tag casse\n#answer rappel"):
        imap.append(SHOP_USER, agent_reply(notification, "agent1@example.com", body))
    run_once(config)

    assert to_customers(smtp_sink) == []
    errors = [_text(m) for m in to_agent(smtp_sink, "agent1@example.com")]
    assert len(errors) == 3 and not to_agent(smtp_sink, "agent2@example.com")
    missing, unknown, failing = sorted(errors, key=lambda t: ("solo-es" not in t, "damagd" not in t))
    assert "French (fr)" in missing and "#answer solo-es es" in missing
    assert "damaged" in unknown
    assert "rappel" in failing and "rappel.j2:1" in failing
    assert all("No se ha enviado nada al cliente" in text for text in errors)
    shown = ticket(config, numbers["fr"])
    assert shown["tags"] == [] and shown["status"] == "open"
    assert all(m["answers"] == [] for m in shown["messages"])


def test_the_answers_command_and_the_cli_list_the_built_in_and_the_shops_answers(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    overrides = tmp_path / "templates"
    (overrides / "es" / "answers").mkdir(parents=True)
    (overrides / "es" / "answers" / "regalo.j2").write_text("Lo envolvemos para regalo, sin coste.\n")
    config = write_config(tmp_path, imap, smtp_sink,
                          extra=f'\n[templates]\ndirectory = "{overrides}"\n')
    numbers = _open_two_tickets(config, imap, smtp_sink)
    notification = _notification(smtp_sink, "agent1@example.com", numbers["es"])
    smtp_sink.clear()
    imap.append(SHOP_USER, agent_reply(notification, "agent1@example.com", "#respuestas"))
    run_once(config)

    assert to_customers(smtp_sink) == []
    [listing] = to_agent(smtp_sink, "agent1@example.com")
    text = _text(listing)
    assert "- regalo (es): Lo envolvemos para regalo, sin coste." in text
    assert "- delay (en, es, fr): Tu pedido va con retraso" in text

    listed = json.loads(cli(config, "answers", "list", "--json").stdout)
    files = {(path.parent.parent.name, path.stem)
             for root in (TEMPLATES, overrides) for path in root.glob("*/answers/*.j2")}
    assert {(lang, a["name"]) for a in listed for lang in a["languages"]} == files
    for answer in listed:
        assert f"- {answer['name']} ({', '.join(answer['languages'])}): {answer['first_line']}" in text


def test_a_forged_answer_sends_nothing_to_anyone_but_the_usual_warning(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    config = write_config(tmp_path, imap, smtp_sink)
    numbers = _open_two_tickets(config, imap, smtp_sink)
    notification = _notification(smtp_sink, "agent1@example.com", numbers["es"])
    smtp_sink.clear()
    imap.append(SHOP_USER, agent_reply(notification, "agent1@example.com", "#answer refund-pending",
                                       in_reply_to=make_msgid(domain="example.com")))
    run_once(config)

    assert [m for m in to_customers(smtp_sink) if m.rcpt_tos == ["maria@example.net"]] == []
    assert not any("Hemos revisado tu reembolso" in _text(m) for m in smtp_sink.messages), \
        "the answer was rendered for someone"
    warnings = [m for m in to_agent(smtp_sink, "agent1@example.com")
                if "no verificado" in str(m.message["Subject"])]
    assert len(warnings) == 1, "the agent whose address was used is told, once"
    for listed in tickets(config):
        shown = ticket(config, listed["id"])
        assert all(m["answers"] == [] for m in shown["messages"])
        assert not any(m["kind"] == "agent-reply" for m in shown["messages"])

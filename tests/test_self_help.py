"""Self-help: FAQ matching, the answers in the acknowledgement, the self-solved close, the one
thank-you after a score, known reasons, and the checks and CLI that go with them."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from helpers.configs import offline_config
from helpers.harness import customer_email
from test_lifecycle import Shop, _shop

from daemon.cli import main
from daemon.config import Config, FaqEntry
from daemon.outbound.rendering import Renderer
from daemon.storage.models import OutboxItem, Ticket
from daemon.tickets.agents.commands import parse_reply
from daemon.tickets.self_help import fold, is_solved_reply, match_faq

DELAY = FaqEntry(name="retraso", url="https://tienda.example/envios", keywords={
    "es": ["no ha llegado", "retraso", "seguimiento"], "fr": ["pas reçu", "retard"],
    "en": ["not arrived", "late"]})
SIZE = FaqEntry(name="talla", keywords={"es": ["talla", "cambiar la talla"]})
ANSWERS = {
    ("es", "retraso"): "Los envíos tardan de 2 a 5 días laborables; el seguimiento está en tu "
                       "correo de envío.",
    ("fr", "retraso"): "La livraison prend de 2 à 5 jours ouvrés.",
    ("en", "retraso"): "Delivery takes 2 to 5 working days.",
    ("es", "talla"): "Puedes cambiar la talla gratis en 30 días.",
}


# --- matching ----------------------------------------------------------------------------------

def test_fold_ignores_case_accents_and_punctuation() -> None:
    assert fold("¿Todavía NO ha llegado?") == ("todavia", "no", "ha", "llegado")


def test_keywords_match_whole_words_and_phrases_without_case_or_accents() -> None:
    assert [m.name for m in match_faq("Mi pedido NO HA LLEGADÓ todavía", "es", [DELAY])] == ["retraso"]
    assert match_faq("hay retrasos en mi pedido", "es", [DELAY]) == ()
    assert match_faq("no ha sido un problema, ha llegado bien", "es", [DELAY]) == ()


def test_only_the_tickets_language_keywords_count() -> None:
    assert match_faq("my order has not arrived", "es", [DELAY]) == ()
    assert [m.name for m in match_faq("my order has not arrived", "en", [DELAY])] == ["retraso"]
    assert [m.name for m in match_faq("je n'ai pas reçu mon colis", "fr", [DELAY])] == ["retraso"]


def test_best_first_and_at_most_two() -> None:
    third = FaqEntry(name="pago", keywords={"es": ["talla"]})
    text = ("Quiero cambiar la talla; y con tanto retraso, el pedido no ha llegado y el "
            "seguimiento no funciona")
    found = match_faq(text, "es", [third, SIZE, DELAY])
    assert [m.name for m in found] == ["retraso", "talla"]
    assert found[0].keywords == ("no ha llegado", "retraso", "seguimiento")


@pytest.mark.parametrize("text", ["RESUELTO", "resuelto", "Resuelto, gracias!", "solucionado",
                                  "RÉSOLU", "résolu merci", "resolu", "SOLVED", "solved thanks",
                                  "Ya está resuelto, muchas gracias.\n\nMaría"])
def test_solved_replies(text: str) -> None:
    assert is_solved_reply(text, "María García")


@pytest.mark.parametrize("text", ["RESUELTO pero quiero devolverlo", "no resuelto", "gracias",
                                  "", "not solved", "solved? the parcel is still missing"])
def test_anything_more_is_not_a_solved_reply(text: str) -> None:
    assert not is_solved_reply(text, "María García")


# --- the flow, in process -----------------------------------------------------------------------

def _templates(tmp_path: Path, promotion: bool = False) -> Path:
    root = tmp_path / "templates"
    for (language, name), text in ANSWERS.items():
        (root / language / "faq").mkdir(parents=True, exist_ok=True)
        (root / language / "faq" / f"{name}.j2").write_text(text + "\n")
    if promotion:
        (root / "es" / "promotion.j2").write_text(
            "{% block subject %}Gracias, {{ ticket.customer_name }}{% endblock %}\n"
            "{% block body %}Gracias por tu {{ score }}. PROMO: 20 % en la colección de "
            "invierno con el código INVIERNO20.{% endblock %}\n")
    return root


def _config(tmp_path: Path, **extra: Any) -> Config:
    return Config.model_validate({
        "shop": {"name": "Tienda", "address": "incidencias@example.com",
                 "languages": ["es", "fr", "en"], "default_language": "es",
                 "timezone": "Europe/Madrid"},
        "imap": {"host": "127.0.0.1", "security": "none", "username": "u"},
        "smtp": {"host": "127.0.0.1", "security": "none"},
        "agents": {"addresses": ["ana@example.com", "luis@example.com"]},
        "escalation": {"digest_hour": None},
        "report": {"to": []},
        "faq": [DELAY.model_dump(), SIZE.model_dump()],
        "templates": {"directory": str(_templates(tmp_path, extra.pop("promotion", False)))},
        **extra,
    })


def _text(item: OutboxItem) -> str:
    parsed = message_from_bytes(item.raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    body = parsed.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def _to_customer(rows: list[OutboxItem]) -> list[OutboxItem]:
    return [r for r in rows if r.recipients == "maria@example.net"]


@pytest.fixture
def shop(tmp_path: Path) -> Shop:
    return _shop(tmp_path, _config(tmp_path))


def _reply(shop: Shop, number: int, body: str) -> None:
    shop.receive(customer_email(f"Re: [#{number}] Mi pedido", body))


def test_a_matching_ticket_gets_the_answer_and_the_solved_word(shop: Shop) -> None:
    number = shop.receive(customer_email("Mi pedido", "Hola, mi pedido no ha llegado todavía."))
    assert number is not None
    [ack] = _to_customer(shop.new_mail())
    text = _text(ack)
    assert ANSWERS[("es", "retraso")] in text and "https://tienda.example/envios" in text
    assert "RESUELTO" in text and ANSWERS[("es", "talla")] not in text
    assert shop.ticket(number).faq == "retraso"


def test_a_ticket_matching_nothing_gets_the_plain_acknowledgement(shop: Shop) -> None:
    number = shop.receive(customer_email("Factura", "Necesito la factura de mi compra."))
    assert number is not None
    [ack] = _to_customer(shop.new_mail())
    assert "RESUELTO" not in _text(ack) and "quizá esto te ayude" not in _text(ack)
    assert shop.ticket(number).faq == ""


def test_resuelto_closes_as_self_solved_with_one_thank_you_and_no_code(shop: Shop) -> None:
    number = shop.receive(customer_email("Mi pedido", "Mi pedido no ha llegado."))
    assert number is not None
    shop.new_mail()
    _reply(shop, number, "RESUELTO")
    rows = shop.new_mail()
    [thanks] = _to_customer(rows)
    assert thanks.kind == "self-solved" and "código" not in _text(thanks).lower()
    told = [r for r in rows if r not in _to_customer(rows)]
    assert [r.kind for r in told] == ["notice-self_solved"] * 2  # one line to each agent
    ticket = shop.ticket(number)
    assert (ticket.status, ticket.self_solved, ticket.discount_code) == ("closed", True, None)
    _reply(shop, number, "RESUELTO")  # said twice: it is closed already, nothing more is sent
    assert not any(r.kind == "self-solved" for r in shop.new_mail())


def test_resuelto_with_more_text_is_an_ordinary_follow_up(shop: Shop) -> None:
    number = shop.receive(customer_email("Mi pedido", "Mi pedido no ha llegado."))
    assert number is not None
    shop.new_mail()
    _reply(shop, number, "RESUELTO pero quiero devolverlo")
    kinds = [r.kind for r in shop.new_mail()]
    assert "self-solved" not in kinds and "notification" in kinds
    ticket = shop.ticket(number)
    assert (ticket.status, ticket.self_solved) == ("open", False)


def test_resuelto_on_a_ticket_offered_nothing_is_an_ordinary_follow_up(shop: Shop) -> None:
    number = shop.receive(customer_email("Factura", "Necesito la factura."))
    assert number is not None
    shop.new_mail()
    _reply(shop, number, "RESUELTO")
    assert shop.ticket(number).status == "open"


def test_resuelto_after_an_agent_answered_is_left_to_the_agents(shop: Shop) -> None:
    number = shop.receive(customer_email("Mi pedido", "Mi pedido no ha llegado."))
    assert number is not None
    shop.agent_reply(number, "Lo he reclamado a la agencia; mañana te digo algo.")
    shop.new_mail()
    _reply(shop, number, "RESUELTO")
    assert "self-solved" not in [r.kind for r in shop.new_mail()]
    assert shop.ticket(number).status == "open"


def test_a_discount_on_self_solved_only_when_configured(tmp_path: Path) -> None:
    shop = _shop(tmp_path, _config(tmp_path, self_help={"discount_on_self_solved": True}))
    number = shop.receive(customer_email("Mi pedido", "Mi pedido no ha llegado."))
    assert number is not None
    shop.new_mail()
    _reply(shop, number, "resuelto, gracias")
    [thanks] = _to_customer(shop.new_mail())
    code = shop.ticket(number).discount_code
    assert code is not None and code in _text(thanks)


def _closed_ticket(shop: Shop) -> int:
    number = shop.receive(customer_email("Mi pedido", "Necesito la factura."))
    assert number is not None
    shop.agent_reply(number, "#close nodiscount Aquí tienes la factura.")
    shop.new_mail()
    return number


def test_a_happy_score_gets_one_mail_with_the_promotion(tmp_path: Path) -> None:
    shop = _shop(tmp_path, _config(tmp_path, promotion=True))
    number = _closed_ticket(shop)
    _reply(shop, number, "5")
    rows = shop.new_mail()
    [promotion] = _to_customer(rows)
    assert promotion.kind == "promotion" and "INVIERNO20" in _text(promotion)
    assert [r for r in rows if r not in _to_customer(rows)] == []
    _reply(shop, number, "4")  # a second score: never a second mail
    assert shop.new_mail() == []
    assert shop.ticket(number).satisfaction == 4


def test_a_low_score_gets_a_thank_you_without_promotion_and_agents_are_told(tmp_path: Path) -> None:
    shop = _shop(tmp_path, _config(tmp_path, promotion=True))
    number = _closed_ticket(shop)
    _reply(shop, number, "2")
    rows = shop.new_mail()
    [thanks] = _to_customer(rows)
    assert thanks.kind == "satisfaction-thanks" and "INVIERNO20" not in _text(thanks)
    told = [r for r in rows if r.kind == "notice-low_satisfaction"]
    assert {r.recipients for r in told} == {"ana@example.com", "luis@example.com"}
    subject = str(message_from_bytes(told[0].raw, policy=policy.default)["Subject"])
    assert f"[#{number}]" in subject and "2 de 5" in subject


def test_without_a_promotion_template_a_score_sends_the_customer_nothing(shop: Shop) -> None:
    number = _closed_ticket(shop)
    _reply(shop, number, "5")
    assert shop.new_mail() == []
    _reply(shop, number, "1")
    assert [r.kind for r in shop.new_mail()] == []  # only the first score is acted on


def test_ticket_json_has_self_solved_and_faq(shop: Shop) -> None:
    from daemon.storage.views import ticket_object

    number = shop.receive(customer_email("Mi pedido", "Mi pedido no ha llegado."))
    assert number is not None
    with shop.parts.sessions() as session:
        found = ticket_object(session.get_one(Ticket, number), 1)
    assert found["self_solved"] is False and found["faq"] == ["retraso"]


# --- reasons ------------------------------------------------------------------------------------

def _tags(text: str, known: list[str]) -> Any:
    from datetime import datetime

    return parse_reply(text, now=datetime(2026, 3, 2, 9), timezone="Europe/Madrid",
                       languages=["es"], agents=["ana@example.com"], reasons=known)


def test_an_unknown_reason_comes_back_with_did_you_mean() -> None:
    reply = _tags("#tag retrasso\nHola", ["retraso", "roto", "talla"])
    assert not reply.commands
    [error] = reply.errors
    assert "did you mean #tag retraso?" in error.message


def test_known_reasons_accept_any_case_and_accents_and_any_tag_without_a_list() -> None:
    assert [c.text for c in _tags("#tag RETRASO", ["retraso"]).commands] == ["retraso"]
    assert [c.text for c in _tags("#tag anything", []).commands] == ["anything"]


# --- checks and the command line ----------------------------------------------------------------

def test_check_faq_names_a_missing_answer_and_an_unknown_language(tmp_path: Path) -> None:
    root = _templates(tmp_path)
    (root / "fr" / "faq" / "retraso.j2").unlink()
    wrong = FaqEntry(name="talla", keywords={"de": ["Größe"]})
    problems = [str(p) for p in Renderer(root).check_faq([DELAY, wrong], ["es", "fr", "en"])]
    assert any("fr/faq/retraso.j2" in p and "missing" in p for p in problems)
    assert any("keywords.de" in p for p in problems)
    assert Renderer(_templates(tmp_path)).check_faq([DELAY, SIZE], ["es", "fr", "en"]) == []


def test_faq_config_refuses_bad_names_and_empty_keywords() -> None:
    with pytest.raises(ValueError, match="lower-case"):
        FaqEntry(name="Retraso!", keywords={"es": ["x"]})
    with pytest.raises(ValueError, match="at least one keyword"):
        FaqEntry(name="retraso", keywords={"es": []})


def _cli_config(tmp_path: Path) -> Path:
    _templates(tmp_path)
    config = tmp_path / "config.toml"
    config.write_text(offline_config(f"sqlite:///{tmp_path / 'db.sqlite'}", rest=f"""
[templates]
directory = "{tmp_path / 'templates'}"

[[faq]]
name = "retraso"
keywords.es = ["no ha llegado", "retraso", "seguimiento"]
keywords.fr = ["pas reçu", "retard"]
keywords.en = ["not arrived", "late"]
url = "https://tienda.example/envios"
"""))
    return config


def test_faq_test_says_which_entries_match_and_why(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    config = _cli_config(tmp_path)
    assert main(["-c", str(config), "faq", "test", "El pedido NO ha llegado", "--lang", "es"]) == 0
    out = capsys.readouterr().out
    assert "1. retraso" in out and "no ha llegado" in out
    assert main(["-c", str(config), "faq", "test", "Quiero la factura", "--lang", "es"]) == 0
    assert "no entry matches" in capsys.readouterr().out


def test_check_config_reports_a_missing_faq_answer(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    config = _cli_config(tmp_path)
    assert main(["-c", str(config), "check-config"]) == 0
    (tmp_path / "templates" / "en" / "faq" / "retraso.j2").unlink()
    assert main(["-c", str(config), "check-config"]) == 2
    assert "en/faq/retraso.j2" in capsys.readouterr().err


def test_a_reload_applies_new_faq_entries_reasons_and_report_settings(tmp_path: Path) -> None:
    from daemon.runtime.reload import merge, needing_restart

    running = _config(tmp_path)
    new = _config(tmp_path, reasons={"known": ["retraso"]}, report={"to": [], "hour": 9})
    new = new.model_copy(update={"faq": [SIZE]})
    applied = merge(running, new)
    assert [e.name for e in applied.faq] == ["talla"] and applied.reasons.known == ["retraso"]
    assert applied.report.hour == 9
    assert needing_restart(applied, new) == []

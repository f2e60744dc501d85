"""Problems without a database: language blocks, problem commands, keywords, problem tokens."""

from __future__ import annotations

from datetime import datetime

from daemon.mail.authenticity import check_agent, notification_id, problem_message_id
from daemon.mail.message import Address, ParsedMessage
from daemon.tickets.agents.broadcast import names_in_text, problem_command_errors, split_versions
from daemon.tickets.agents.commands import parse_reply
from daemon.tickets.problems.keywords import matching_keywords

SECRET = b"s3cret"
AGENTS = ["ana@shop.example", "luis@shop.example"]


def _parse(text: str):  # type: ignore[no-untyped-def]
    return parse_reply(text, now=datetime(2026, 3, 2, 9, 0), timezone="Europe/Madrid",
                       languages=["es", "fr", "en"], agents=AGENTS)


def test_each_language_gets_its_block_and_others_the_first_one_marked_as_fallback() -> None:
    versions = split_versions("[es]\nLa huelga acaba mañana.\n\n[FR]\nLa grève finit demain.\n")
    assert versions.errors == ()
    assert versions.languages == ("es", "fr")
    assert versions.for_language("fr").text == "La grève finit demain."
    assert not versions.for_language("fr").fallback
    english = versions.for_language("en")
    assert (english.text, english.language, english.fallback) == ("La huelga acaba mañana.", "es",
                                                                  True)


def test_a_reply_without_blocks_is_one_version_for_everybody_and_never_a_fallback() -> None:
    versions = split_versions("Hola a todos.\n[nota] esto no abre un bloque")
    assert versions.for_language("fr").text.startswith("Hola a todos.")
    assert not versions.for_language("fr").fallback


def test_text_before_the_first_block_a_repeated_language_and_an_empty_block_are_errors() -> None:
    assert split_versions("Hola\n[es]\nUno").errors
    assert split_versions("[es]\nUno\n[es]\nDos").errors
    assert split_versions("[es]\n\n[fr]\nDeux").errors


def test_only_commands_that_fit_every_ticket_are_allowed_on_a_problem_thread() -> None:
    reply = _parse("#estado La huelga sigue\n#esperar 2d\n#asignar ana\n#problema otro\n\nTexto")
    refused = [e.line for e in problem_command_errors(reply.commands)]
    assert refused == ["#asignar ana", "#problema otro"]


def test_problem_command_with_title_keywords_accents_and_unlink() -> None:
    reply = _parse("#Problème Huelga-Transporte Huelga de transportes\n"
                   "keywords: seur, Huelga , retraso\n\nHola")
    [command] = reply.commands
    assert (command.argument, command.text) == ("huelga-transporte", "Huelga de transportes")
    assert command.keywords == ("seur", "huelga", "retraso")
    assert reply.body == "Hola"
    [unlink] = _parse("#problema -").commands
    assert unlink.argument == "-"
    assert _parse("#problem huelga_transporte").errors
    assert _parse("#problem").errors


def test_keywords_match_whole_words_ignoring_case_and_accents() -> None:
    keywords = ["seur", "huelga", "retraso", "no llega"]
    assert matching_keywords(keywords, "Mi pedido NO LLEGA por la Huelga") == ["huelga", "no llega"]
    assert matching_keywords(keywords, "El envío se retrasó") == ["retraso"]
    assert matching_keywords(keywords, "Llegó roto") == []
    assert matching_keywords(["retrasó"], "hay un RETRASO") == ["retrasó"]
    assert matching_keywords(keywords, "seuro huelgas") == []


def test_a_text_naming_a_customer_of_the_problem_is_found() -> None:
    people = [("María García", "maria@example.net"), ("Jo", "jo@example.org")]
    assert names_in_text("Hola, como le dije a maría garcía…", people) == ["María García"]
    assert names_in_text("Escribid a MARIA@example.net", people) == ["maria@example.net"]
    assert names_in_text("Jo, la huelga sigue", people) == []


def _reply(sender: str, *ids: str) -> ParsedMessage:
    return ParsedMessage(message_id="r@x", in_reply_to=ids[:1], references=ids,
                         sender=Address("", sender), reply_to=(), to=(), cc=(), subject="Re: x",
                         date=None, text="", html="", attachments=(), headers=())


def test_a_problem_token_proves_that_problem_for_that_agent_only() -> None:
    token = problem_message_id(SECRET, 7, "ana@shop.example", "shop.example")
    check = check_agent(_reply("ana@shop.example", token), AGENTS, SECRET, None)
    assert check is not None and check.verified and (check.problem, check.ticket) == (7, None)
    for message in (_reply("luis@shop.example", token),
                    _reply("ana@shop.example", token.replace(".problem.7.", ".problem.8."))):
        check = check_agent(message, AGENTS, SECRET, None)
        assert check is not None and not check.verified


def test_a_ticket_token_cannot_pass_for_a_problem_token() -> None:
    ticket_token = notification_id(SECRET, 7, "ana@shop.example", "shop.example")
    _, _, rest = ticket_token.partition(".notify.")
    forged = f"incidencias.problem.7.{rest}"
    check = check_agent(_reply("ana@shop.example", forged), AGENTS, SECRET, None)
    assert check is not None and not check.verified


def test_a_dkim_proven_agent_replying_in_a_problem_thread_names_that_problem() -> None:
    token = problem_message_id(SECRET, 9, "luis@shop.example", "shop.example")
    passed = (("Authentication-Results", "mx.shop.example; dkim=pass header.d=shop.example"),)
    message = ParsedMessage(message_id="r@x", in_reply_to=(token,), references=(token,),
                            sender=Address("", "ana@shop.example"), reply_to=(), to=(), cc=(),
                            subject="Re: x", date=None, text="", html="", attachments=(),
                            headers=passed)
    check = check_agent(message, AGENTS, SECRET, "mx.shop.example")
    assert check is not None and check.verified and check.problem == 9

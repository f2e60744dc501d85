"""Agent command parsing: what a reply's top lines mean, and which mistakes are refused."""

from datetime import datetime

import pytest

from daemon.tickets.agents.commands import ParsedReply, command_help, parse_reply

# Monday 23 November 2026, 11:00 in Madrid (UTC+1).
NOW = datetime(2026, 11, 23, 10, 0)
AGENTS = ["ana@shop.example", "luis@shop.example"]


def parse(text: str) -> ParsedReply:
    return parse_reply(text, now=NOW, timezone="Europe/Madrid", languages=["es", "fr", "en"],
                       agents=AGENTS)


def only(text: str) -> tuple[str, str]:
    reply = parse(text)
    assert reply.errors == []
    assert len(reply.commands) == 1
    command = reply.commands[0]
    return command.name, command.text


def test_plain_reply_has_no_commands_and_keeps_the_whole_text_as_body() -> None:
    reply = parse("Hola María,\n\nte enviamos otra talla.\n")
    assert (reply.commands, reply.errors, reply.is_note) == ([], [], False)
    assert reply.body == "Hola María,\n\nte enviamos otra talla."


def test_command_lines_never_reach_the_body() -> None:
    reply = parse("#tag talla\n#estado Pedido enviado\n\nHola María")
    assert [c.name for c in reply.commands] == ["tag", "status"]
    assert reply.body == "Hola María"


@pytest.mark.parametrize(("line", "name"), [
    ("#close", "close"), ("#CERRAR", "close"), ("#Reabrir", "reopen"), ("#reopen", "reopen"),
    ("#help", "help"), ("#ayuda", "help"), ("#done", "done"), ("#hecho", "done"),
    ("#waiting", "waiting"), ("#pendiente", "waiting"),
])
def test_names_are_case_insensitive_with_spanish_aliases(line: str, name: str) -> None:
    assert only(line)[0] == name


def test_note_on_its_own_line_makes_the_rest_internal() -> None:
    reply = parse("#nota\nLa clienta llamó por teléfono.")
    assert reply.is_note and reply.body == "La clienta llamó por teléfono."


def test_note_text_on_the_same_line_starts_the_note() -> None:
    reply = parse("#note called her\nshe is fine")
    assert reply.is_note and reply.body == "called her\nshe is fine"


def test_lines_after_note_are_note_text_even_if_they_start_with_a_hash() -> None:
    reply = parse("#note\n#close is what I would do")
    assert reply.commands == [] and reply.body == "#close is what I would do"


def test_hash_followed_by_a_digit_or_space_is_ordinary_text() -> None:
    reply = parse("#2 is the order number\n# not a command either")
    assert reply.commands == [] and reply.errors == []
    assert reply.body.startswith("#2 is the order number")


def test_commands_after_the_body_starts_are_text() -> None:
    reply = parse("Hola\n#close")
    assert reply.commands == [] and reply.body == "Hola\n#close"


def test_unknown_command_is_an_error_that_names_it() -> None:
    reply = parse("#cerrar\n#volar alto\n\nGracias")
    assert [e.message for e in reply.errors] == ["unknown command #volar"]
    assert reply.errors[0].line == "#volar alto"


def test_close_reads_percent_no_discount_and_personal_line() -> None:
    command = parse("#cerrar 15% Gracias por tu paciencia, Ana").commands[0]
    assert (command.percent, command.no_discount, command.text) == (
        15, False, "Gracias por tu paciencia, Ana")
    plain = parse("#close nodiscount").commands[0]
    assert (plain.percent, plain.no_discount, plain.text) == (None, True, "")
    assert parse("#cerrar sindescuento").commands[0].no_discount


@pytest.mark.parametrize("line", ["#close 0%", "#close 150%", "#close 10% nodiscount"])
def test_impossible_discounts_are_refused(line: str) -> None:
    assert parse(line).errors


@pytest.mark.parametrize(("argument", "expected"), [
    ("90s", datetime(2026, 11, 23, 10, 1, 30)),
    ("15m", datetime(2026, 11, 23, 10, 15)),
    ("4h", datetime(2026, 11, 23, 14, 0)),
    ("2d", datetime(2026, 11, 25, 10, 0)),
    ("2w", datetime(2026, 12, 7, 10, 0)),
    ("2026-12-01", datetime(2026, 12, 1, 8, 0)),
    ("1/12/2026", datetime(2026, 12, 1, 8, 0)),
    ("1/12", datetime(2026, 12, 1, 8, 0)),
    ("mañana", datetime(2026, 11, 24, 8, 0)),
    ("tomorrow", datetime(2026, 11, 24, 8, 0)),
    ("demain", datetime(2026, 11, 24, 8, 0)),
    ("viernes", datetime(2026, 11, 27, 8, 0)),
    ("monday", datetime(2026, 11, 30, 8, 0)),
    ("miércoles", datetime(2026, 11, 25, 8, 0)),
    ("2026-12-01 16:30", datetime(2026, 12, 1, 15, 30)),
    ("tomorrow 10h", datetime(2026, 11, 24, 9, 0)),
])
def test_wait_reads_durations_and_dates_in_shop_time(argument: str, expected: datetime) -> None:
    command = parse(f"#wait {argument}").commands[0]
    assert command.until == expected


def test_a_date_in_the_summer_uses_summer_time() -> None:
    command = parse("#esperar 2027-07-01").commands[0]
    assert command.until == datetime(2027, 7, 1, 7, 0)


@pytest.mark.parametrize("argument", ["", "2026-11-01", "yesterday", "2026-02-30", "5y", "0d",
                                      "2d maybe", "2028-01-01", "tomorrow 25:00"])
def test_wait_refuses_past_far_or_unreadable_dates(argument: str) -> None:
    reply = parse(f"#wait {argument}")
    assert reply.errors and reply.errors[0].line == f"#wait {argument}".strip()


def test_promise_keeps_when_and_what() -> None:
    command = parse("#prometer mañana 10:00 llamar a la clienta").commands[0]
    assert command.until == datetime(2026, 11, 24, 9, 0)
    assert command.text == "llamar a la clienta"
    assert parse("#promise 1d call her").commands[0].text == "call her"


def test_promise_without_text_is_an_error() -> None:
    assert parse("#promise 1d").errors


@pytest.mark.parametrize("argument", ["luis", "LUIS", "luis@shop.example"])
def test_assign_takes_an_agent_by_local_part_or_address(argument: str) -> None:
    assert only(f"#asignar {argument}") == ("assign", "luis@shop.example")


def test_assign_refuses_someone_who_is_not_an_agent() -> None:
    reply = parse("#assign pepe")
    assert "pepe is not an agent" in reply.errors[0].message


def test_each_word_of_a_tag_line_is_a_tag() -> None:
    assert [c.text for c in parse("#etiqueta Talla urgente").commands] == ["talla", "urgente"]


def test_lang_must_be_one_of_the_shop_languages() -> None:
    assert only("#idioma FR") == ("lang", "fr")
    assert "es, fr, en" in parse("#lang de").errors[0].message


def test_status_keeps_the_text_as_written() -> None:
    assert only("#estado Hemos abierto una reclamación") == (
        "status", "Hemos abierto una reclamación")
    assert parse("#status").errors


@pytest.mark.parametrize("text", ["#close\n#reopen", "#cerrar\n#pendiente", "#close\n#close",
                                  "#wait 2d\n#wait 3d\n#close"])
def test_contradictory_or_repeated_commands_are_refused(text: str) -> None:
    assert parse(text).errors


def test_blank_lines_inside_the_command_block_are_allowed() -> None:
    reply = parse("\n#wait 2d\n\n#tag talla\n\nHola")
    assert [c.name for c in reply.commands] == ["wait", "tag"] and reply.body == "Hola"


def test_help_lists_every_command_with_its_spanish_alias() -> None:
    lines = command_help()
    for english, spanish in [("#close", "#cerrar"), ("#note", "#nota"), ("#wait", "#esperar"),
                             ("#promise", "#prometer"), ("#help", "#ayuda")]:
        assert any(english in line and spanish in line for line in lines)


# --- French aliases (agents may work in French) ----------------------------------------------

FRENCH = [
    ("#note La cliente a appelé", "note"), ("#fermer", "close"), ("#clore", "close"),
    ("#attendre 3d", "wait"), ("#en-attente", "waiting"), ("#En-Attente", "waiting"),
    ("#promettre demain rappeler la cliente", "promise"), ("#fait", "done"),
    ("#assigner ana", "assign"), ("#attribuer luis", "assign"), ("#étiquette taille", "tag"),
    ("#etiquette taille", "tag"), ("#langue fr", "lang"), ("#statut Colis retrouvé", "status"),
    ("#rouvrir", "reopen"), ("#aide", "help"), ("#réponse delay", "answer"),
    ("#reponse delay", "answer"), ("#RÉPONSES", "answers"), ("#commande 4411", "order"),
    ("#Commande -4411", "order"), ("#problème huelga", "problem"), ("#probleme huelga", "problem"),
]


@pytest.mark.parametrize(("line", "name"), FRENCH)
def test_every_command_has_a_french_alias_accents_optional(line: str, name: str) -> None:
    reply = parse(line)
    assert reply.errors == []
    assert (reply.is_note if name == "note" else [c.name for c in reply.commands] == [name])


def test_every_english_command_has_a_french_alias_tested() -> None:
    from daemon.tickets.agents.commands import ALIASES

    assert set(ALIASES.values()) <= {name for _, name in FRENCH}


@pytest.mark.parametrize(("english", "french"), [
    ("#close", "#fermer"), ("#wait", "#attendre"), ("#waiting", "#en-attente"),
    ("#promise", "#promettre"), ("#done", "#fait"), ("#assign", "#assigner"), ("#tag", "#étiquette"),
    ("#lang", "#langue"), ("#status", "#statut"), ("#reopen", "#rouvrir"), ("#help", "#aide"),
    ("#answer", "#réponse"), ("#answers", "#réponses"), ("#problem", "#problème"),
])
def test_help_lists_the_french_alias_beside_the_english_name(english: str, french: str) -> None:
    assert any(line.startswith(f"{english} /") and f" {french} " in line.replace(":", " ")
               for line in command_help())


# --- #answer ---------------------------------------------------------------------------------

def test_answer_reads_a_name_and_an_optional_language() -> None:
    reply = parse("#answer delay\n#respuesta Wrong-Item fr\n\nHola María")
    assert [(c.name, c.text, c.language) for c in reply.commands] == [
        ("answer", "delay", ""), ("answer", "wrong-item", "fr")]
    assert reply.body == "Hola María"


@pytest.mark.parametrize("line", ["#answer", "#answer delay fr extra", "#answer de_lay",
                                  "#answer delay french", "#answer -delay"])
def test_a_malformed_answer_line_is_an_explained_error(line: str) -> None:
    [error] = parse(line).errors
    assert error.line == line
    assert any(word in error.message for word in ("#answer", "answer name", "language code"))


def test_answer_cannot_go_with_close_or_note() -> None:
    assert parse("#close\n#answer delay").errors
    [error] = parse("#answer delay\n#note just for us").errors
    assert "#note" in error.message


def test_answers_lists_need_no_argument() -> None:
    assert only("#respuestas") == ("answers", "")

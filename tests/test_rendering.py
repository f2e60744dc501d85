"""Templates render in every shipped language, overrides work file by file, customer text stays data."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from daemon.outbound.rendering import (
    Renderer,
    TemplateError,
    TemplateProblem,
    bare_subject,
    filesize,
    long_date,
    one_line,
    text_to_html,
    tidy_text,
)
from daemon.outbound.template_samples import (
    AGENT_TEMPLATES,
    CUSTOMER_TEMPLATES,
    sample_context,
    sample_variants,
)

CUSTOMER_LANGUAGES = ("es", "fr", "en", "de", "it", "pt")
AGENT_LANGUAGES = ("es", "fr", "en")
HOSTILE = "{{ 7*7 }} {% for x in y %}{% endfor %} <script>alert('x')</script>"

BUILTIN = Renderer()


def _write(root: Path, relpath: str, source: str) -> Path:
    path = root / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source, encoding="utf-8")
    return path


def _all_pairs() -> list[tuple[str, str]]:
    return [(name, lang) for name in BUILTIN.names() for lang in BUILTIN.languages(name)]


def test_customer_templates_exist_in_every_customer_language() -> None:
    for name in CUSTOMER_TEMPLATES:
        assert set(CUSTOMER_LANGUAGES) <= set(BUILTIN.languages(name)), name


def test_agent_templates_exist_in_every_agent_language() -> None:
    for name in AGENT_TEMPLATES:
        assert set(AGENT_LANGUAGES) <= set(BUILTIN.languages(name)), name


def test_names_lists_messages_but_not_partials() -> None:
    assert set(BUILTIN.names()) == set(CUSTOMER_TEMPLATES) | set(AGENT_TEMPLATES)


@pytest.mark.parametrize(("name", "language"), _all_pairs())
def test_every_template_renders_with_full_and_sparse_sample_data(name: str, language: str) -> None:
    for context in sample_variants(name):
        rendered = BUILTIN.render(name, language, context)
        assert rendered.subject and "\n" not in rendered.subject and "\r" not in rendered.subject
        assert rendered.text.strip()
        assert f'<html lang="{language}">' in rendered.html
        if name != "agent_digest" and context.get("ticket") is not None:
            assert f"[#{context['ticket']['number']}]" in rendered.subject


def test_builtin_templates_pass_the_checker() -> None:
    assert BUILTIN.check() == []


@pytest.mark.parametrize("language", CUSTOMER_LANGUAGES)
def test_thread_subject_carries_ticket_tag_and_customer_subject(language: str) -> None:
    context = sample_context("acknowledgement")
    context["ticket"]["subject"] = "RE: Talla equivocada"
    subject = BUILTIN.render("acknowledgement", language, context).subject
    assert subject == "Re: [#1042] Talla equivocada"


@pytest.mark.parametrize("language", CUSTOMER_LANGUAGES)
def test_empty_customer_subject_gets_a_worded_subject(language: str) -> None:
    context = sample_context("acknowledgement")
    context["ticket"]["subject"] = ""
    subject = BUILTIN.render("acknowledgement", language, context).subject
    assert subject.startswith("[#1042] ") and len(subject) > len("[#1042] ")


@pytest.mark.parametrize("language", CUSTOMER_LANGUAGES)
def test_acknowledgement_names_the_problem_and_when_we_write_again(language: str) -> None:
    context = sample_context("acknowledgement")
    context["update_days"] = 4
    text = BUILTIN.render("acknowledgement", language, context).text
    assert "Pedido 58213 sin llegar" in text
    assert "4" in text and "1042" in text


@pytest.mark.parametrize("language", CUSTOMER_LANGUAGES)
def test_closing_gives_code_value_validity_and_asks_for_a_rating(language: str) -> None:
    rendered = BUILTIN.render("closing", language, sample_context("closing"))
    assert "GRACIAS-7KQ2M" in rendered.text
    assert "10" in rendered.text and "%" in rendered.text
    assert "2027" in rendered.text and "2027-02-28" not in rendered.text
    assert re.search(r"\b1\b.*\b5\b", rendered.text)


@pytest.mark.parametrize("language", CUSTOMER_LANGUAGES)
def test_closing_without_discount_mentions_no_code(language: str) -> None:
    context = sample_context("closing")
    context["discount"] = None
    assert "GRACIAS" not in BUILTIN.render("closing", language, context).text


@pytest.mark.parametrize(
    ("language", "kind", "expected"),
    [
        ("es", "reply", "[#12] Ana respondió: Talla equivocada"),
        ("es", "note", "[#12] Nota interna de Ana: Talla equivocada"),
        ("en", "reply", "[#12] Ana replied: Talla equivocada"),
        ("en", "note", "[#12] Internal note from Ana: Talla equivocada"),
        ("fr", "reply", "[#12] Ana a répondu : Talla equivocada"),
        ("fr", "note", "[#12] Ana a ajouté une note interne : Talla equivocada"),
    ],
)
def test_team_copy_subject_says_who_replied_or_noted_and_on_what(
    language: str, kind: str, expected: str
) -> None:
    context = sample_context("agent_copy")
    context["ticket"].update(number=12, subject="RE: Talla equivocada")
    context.update(agent_name="Ana", kind=kind)
    assert BUILTIN.render("agent_copy", language, context).subject == expected


@pytest.mark.parametrize(
    ("language", "unseen"),
    [
        ("es", "El cliente no la ha visto"),
        ("en", "The customer has not seen it"),
        ("fr", "Le client ne l'a pas vue"),
    ],
)
def test_team_copy_of_a_note_says_the_customer_has_not_seen_it(language: str, unseen: str) -> None:
    context = sample_context("agent_copy")
    context.update(kind="note", text="Ha llamado: prefiere esperar.")
    note = BUILTIN.render("agent_copy", language, context).text
    assert unseen in note and "> Ha llamado: prefiere esperar." in note
    context["kind"] = "reply"
    assert unseen not in BUILTIN.render("agent_copy", language, context).text


@pytest.mark.parametrize(
    ("language", "reply_answers"),
    [
        ("es", "Responde a este correo para contestar al cliente"),
        ("en", "Reply to this email to answer the customer"),
        ("fr", "Répondez à cet e-mail pour répondre au client"),
    ],
)
def test_team_copy_says_a_reply_answers_the_customer_unless_it_is_a_note(
    language: str, reply_answers: str
) -> None:
    context = sample_context("agent_copy")
    context["commands"] = []
    text = BUILTIN.render("agent_copy", language, context).text
    assert reply_answers in text and "#note" in text


@pytest.mark.parametrize("language", AGENT_LANGUAGES)
def test_help_lists_every_command_and_how_replies_reach_the_customer(language: str) -> None:
    context = sample_context("agent_help")
    rendered = BUILTIN.render("agent_help", language, context)
    for command in context["commands"]:
        assert f"- {command}\n" in rendered.text
        assert f"<li>{command}</li>" in rendered.html
    assert context["shop"]["address"] in rendered.text and "#note" in rendered.text
    assert "1042" in rendered.text


@pytest.mark.parametrize("language", AGENT_LANGUAGES)
def test_help_without_a_ticket_has_no_ticket_tag_and_still_explains_replies(language: str) -> None:
    context = sample_context("agent_help")
    context.update(ticket=None, commands=[])
    rendered = BUILTIN.render("agent_help", language, context)
    assert "[#" not in rendered.subject
    assert "1042" not in rendered.text and "None" not in rendered.text
    assert context["shop"]["address"] in rendered.text and "#note" in rendered.text


def test_shop_contact_details_and_signature_come_from_context() -> None:
    context = sample_context("update")
    context["shop"] = {
        "name": "Zapatos Lola",
        "address": "ayuda@lola.example",
        "phone": "+34 600 111 222",
        "web": "https://lola.example",
        "signature": "Lola y Paco",
    }
    text = BUILTIN.render("update", "es", context).text
    assert "Lola y Paco" in text and "+34 600 111 222" in text and "https://lola.example" in text


def test_missing_signature_signs_as_the_shop_team() -> None:
    context = sample_context("update")
    context["shop"]["signature"] = None
    assert "El equipo de Tienda Ejemplo" in BUILTIN.render("update", "es", context).text


def test_unknown_language_falls_back_to_the_fallback_language() -> None:
    context = sample_context("acknowledgement")
    dutch = BUILTIN.render("acknowledgement", "nl", context, fallback_language="en")
    assert dutch == BUILTIN.render("acknowledgement", "en", context)
    assert '<html lang="en">' in dutch.html


def test_region_subtag_selects_the_language() -> None:
    context = sample_context("acknowledgement")
    assert BUILTIN.render("acknowledgement", "fr-BE", context) == BUILTIN.render(
        "acknowledgement", "fr", context
    )


def test_agent_template_in_a_language_without_it_uses_the_fallback() -> None:
    context = sample_context("agent_digest")
    german = BUILTIN.render("agent_digest", "de", context, fallback_language="es")
    assert german.subject.startswith("Resumen de incidencias")


def test_unknown_template_name_raises_template_error() -> None:
    with pytest.raises(TemplateError) as caught:
        BUILTIN.render("no_such_message", "es", {})
    assert "no_such_message" in caught.value.problem.message


def test_missing_context_variable_raises_template_error_with_line() -> None:
    context = sample_context("acknowledgement")
    del context["update_days"]
    with pytest.raises(TemplateError) as caught:
        BUILTIN.render("acknowledgement", "en", context)
    problem = caught.value.problem
    assert problem.file.endswith("en/acknowledgement.j2")
    assert problem.line is not None
    assert "update_days" in problem.message


# --- customer text is data --------------------------------------------------------------


def test_template_syntax_in_agent_text_reaches_the_customer_literally() -> None:
    context = sample_context("agent_reply")
    context["text"] = HOSTILE
    rendered = BUILTIN.render("agent_reply", "es", context)
    assert HOSTILE in rendered.text
    assert "49" not in rendered.text
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;" in rendered.html
    assert "{{ 7*7 }}" in rendered.html and "{% for x in y %}" in rendered.html


def test_agent_text_in_team_copy_is_quoted_literally() -> None:
    context = sample_context("agent_copy")
    context["text"] = HOSTILE
    rendered = BUILTIN.render("agent_copy", "en", context)
    assert f"> {HOSTILE}" in rendered.text and "49" not in rendered.text
    assert "<script>" not in rendered.html


def test_template_syntax_in_customer_subject_and_name_is_not_evaluated() -> None:
    context = sample_context("acknowledgement")
    context["ticket"]["subject"] = HOSTILE
    context["ticket"]["customer_name"] = "{{ shop.name }}"
    rendered = BUILTIN.render("acknowledgement", "fr", context)
    assert "{{ 7*7 }}" in rendered.subject and "49" not in rendered.subject
    assert "{{ shop.name }}" in rendered.text
    assert "<script>" not in rendered.html


def test_customer_message_in_agent_notification_is_quoted_literally() -> None:
    context = sample_context("agent_new_ticket")
    context["text"] = HOSTILE
    rendered = BUILTIN.render("agent_new_ticket", "es", context)
    assert f"> {HOSTILE}" in rendered.text
    assert "<blockquote" in rendered.html and "<script>" not in rendered.html


def test_header_injection_in_customer_subject_is_collapsed() -> None:
    context = sample_context("acknowledgement")
    context["ticket"]["subject"] = "Pedido\r\nBcc: victim@example.org\u2028x"
    subject = BUILTIN.render("acknowledgement", "es", context).subject
    assert subject == "Re: [#1042] Pedido Bcc: victim@example.org x"


# --- overrides and the checker ----------------------------------------------------------


def test_override_changes_one_template_and_leaves_the_others_builtin(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "es/acknowledgement.j2",
        "{% block subject %}[#{{ ticket.number }}] Recibido{% endblock %}\n"
        "{% block body %}Hola desde {{ shop.name }}.{% endblock %}\n",
    )
    renderer = Renderer(tmp_path)
    context = sample_context("acknowledgement")
    overridden = renderer.render("acknowledgement", "es", context)
    assert overridden.subject == "[#1042] Recibido"
    assert overridden.text == "Hola desde Tienda Ejemplo.\n"
    assert renderer.render("acknowledgement", "fr", context) == BUILTIN.render(
        "acknowledgement", "fr", context
    )
    update = sample_context("update")
    assert renderer.render("update", "es", update) == BUILTIN.render("update", "es", update)
    assert renderer.check() == []


def test_overriding_a_partial_changes_every_message_that_includes_it(tmp_path: Path) -> None:
    _write(tmp_path, "es/_signature.j2", "Firmado: {{ shop.name }}\n")
    renderer = Renderer(tmp_path)
    for name in ("acknowledgement", "update", "closing"):
        assert "Firmado: Tienda Ejemplo" in renderer.render(name, "es", sample_context(name)).text


def test_override_can_add_a_language(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "nl/acknowledgement.j2",
        "{% block subject %}[#{{ ticket.number }}] Ontvangen{% endblock %}"
        "{% block body %}Bedankt.{% endblock %}",
    )
    renderer = Renderer(tmp_path)
    assert "nl" in renderer.languages("acknowledgement")
    assert renderer.render("acknowledgement", "nl", sample_context("acknowledgement")).text == (
        "Bedankt.\n"
    )


def test_checker_reports_undefined_attribute_by_file_and_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "en/update.j2",
        "{% block subject %}[#{{ ticket.number }}]{% endblock %}\n"
        "{% block body %}\n"
        "Case {{ ticket.numbr }}\n"
        "{% endblock %}\n",
    )
    assert Renderer(tmp_path).check() == [
        TemplateProblem(str(path), 3, "'ticket' has no attribute 'numbr'")
    ]


def test_checker_finds_a_typo_in_a_branch_the_sample_data_does_not_take(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "en/closing.j2",
        "{% block subject %}[#{{ ticket.number }}]{% endblock %}\n"
        "{% block body %}\n"
        "{% if ticket.number < 0 %}\n"
        "{{ tiket.subject }}\n"
        "{% endif %}\n"
        "{% endblock %}\n",
    )
    problems = Renderer(tmp_path).check()
    assert [(p.file, p.line) for p in problems] == [(str(path), 4)]
    assert "tiket" in problems[0].message


def test_checker_reports_syntax_error_by_file_and_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "fr/reopened.j2",
        "{% block subject %}[#{{ ticket.number }}]{% endblock %}\n"
        "{% block body %}\n"
        "Bonjour\n"
        "{% if ticket.subject %}\n"
        "{% endblock %}\n",
    )
    problems = Renderer(tmp_path).check()
    assert len(problems) == 1
    assert (problems[0].file, problems[0].line) == (str(path), 5)
    assert str(problems[0]).startswith(f"{path}:5: ")


def test_checker_reports_error_inside_an_included_partial(tmp_path: Path) -> None:
    path = _write(tmp_path, "de/_signature.j2", "Ihr Team\n{{ shop.telefon }}\n")
    problems = Renderer(tmp_path).check()
    assert problems
    assert {(p.file, p.line) for p in problems} == {(str(path), 2)}


def test_checker_reports_missing_block(tmp_path: Path) -> None:
    path = _write(tmp_path, "en/update.j2", "{% block body %}Hello{% endblock %}\n")
    problems = Renderer(tmp_path).check()
    assert [(p.file, p.message) for p in problems] == [(str(path), "missing {% block subject %}")]
    with pytest.raises(TemplateError):
        Renderer(tmp_path).render("update", "en", sample_context("update"))


def test_checker_reports_unknown_names_and_misplaced_files(tmp_path: Path) -> None:
    typo = _write(tmp_path, "es/acknowledgment.j2", "{% block subject %}x{% endblock %}")
    stray = _write(tmp_path, "spanish/closing.j2", "{% block subject %}x{% endblock %}")
    problems = Renderer(tmp_path).check()
    assert TemplateProblem(str(typo), None, "unknown template name 'acknowledgment'") in problems
    assert any(p.file == str(stray) for p in problems)


def test_sandbox_blocks_python_internals_in_an_override(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "en/update.j2",
        "{% block subject %}[#{{ ticket.number }}]{% endblock %}\n"
        "{% block body %}\n"
        "{{ ''.__class__.__mro__[1].__subclasses__() }}\n"
        "{% endblock %}\n",
    )
    problems = Renderer(tmp_path).check()
    assert [(p.file, p.line) for p in problems] == [(str(path), 3)]


def test_reload_picks_up_an_edited_override(tmp_path: Path) -> None:
    source = "{% block subject %}[#{{ ticket.number }}] {}{% endblock %}{% block body %}b{% endblock %}"
    path = _write(tmp_path, "en/update.j2", source.replace("{}", "first"))
    renderer = Renderer(tmp_path)
    context = sample_context("update")
    assert renderer.render("update", "en", context).subject == "[#1042] first"
    path.write_text(source.replace("{}", "second"), encoding="utf-8")
    renderer.reload()
    assert renderer.render("update", "en", context).subject == "[#1042] second"


# --- text and HTML helpers --------------------------------------------------------------


def test_html_part_escapes_links_urls_and_loads_nothing_remote() -> None:
    document = text_to_html(
        "Hola <b>Ana</b> & co:\nmira https://example.com/a?b=1&c=2).\n\n> cita\n\n- uno\n- dos\n",
        "es",
        "Asunto <x>",
    )
    assert "&lt;b&gt;Ana&lt;/b&gt; &amp; co:<br>" in document
    assert '<a href="https://example.com/a?b=1&amp;c=2">https://example.com/a?b=1&amp;c=2</a>).' in (
        document
    )
    assert "<blockquote" in document and "<li>uno</li>" in document
    assert "<title>Asunto &lt;x&gt;</title>" in document
    assert not re.search(r"<(img|link|script|iframe)\b|\bsrc=|url\(", document)


def test_html_keeps_a_paragraph_with_some_quoted_lines_as_text() -> None:
    document = text_to_html("Dijiste:\n> algo\n", "es", "s")
    assert "<p>Dijiste:<br>\n&gt; algo</p>" in document


def test_plain_text_is_tidied_but_signature_separator_keeps_its_space() -> None:
    assert tidy_text("\n\nHola  \n\n\n\nAdiós\n-- \nLola\n\n") == "Hola\n\nAdiós\n-- \nLola\n"


@pytest.mark.parametrize(
    ("raw", "bare"),
    [
        ("Re: Pedido roto", "Pedido roto"),
        ("RE : TR: [#12] Colis perdu", "Colis perdu"),
        ("AW: WG: Bestellung", "Bestellung"),
        ("RV: Fwd: Re[2]: Talla", "Talla"),
        ("Pedido [#1042] sin llegar", "Pedido sin llegar"),
        ("Recibo de compra", "Recibo de compra"),
        ("", ""),
    ],
)
def test_bare_subject_drops_reply_prefixes_and_ticket_tags(raw: str, bare: str) -> None:
    assert bare_subject(raw) == bare


def test_one_line_removes_controls_and_line_separators() -> None:
    assert one_line(" a\r\n\tb\x00c\u2029d ") == "a b c d"


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("es", "28 de febrero de 2027"),
        ("fr", "28 février 2027"),
        ("en", "28 February 2027"),
        ("de", "28. Februar 2027"),
        ("it", "28 febbraio 2027"),
        ("pt", "28 de fevereiro de 2027"),
        ("nl", "2027-02-28"),
    ],
)
def test_long_date_writes_dates_the_local_way(language: str, expected: str) -> None:
    assert long_date("2027-02-28", language) == expected


def test_long_date_uses_ordinal_for_the_first_in_french_and_leaves_junk_alone() -> None:
    assert long_date("2027-03-01", "fr") == "1er mars 2027"
    assert long_date("next spring", "es") == "next spring"


def test_filesize_uses_local_units_and_decimal_comma() -> None:
    assert filesize(850) == "850\u00a0B"
    assert filesize(2_411_724, "en") == "2.3\u00a0MB"
    assert filesize(2_411_724, "es") == "2,3\u00a0MB"
    assert filesize(184_320, "fr") == "180\u00a0Ko"


def test_sample_context_for_acknowledgement_is_exactly_the_documented_keys() -> None:
    context: dict[str, Any] = sample_context("acknowledgement")
    assert set(context) == {"shop", "ticket", "update_days", "faq", "solved_word"}
    assert set(context["ticket"]) == {"number", "subject", "customer_name"}


def test_checker_reports_a_missing_override_directory(tmp_path: Path) -> None:
    missing = tmp_path / "plantillas"
    assert Renderer(missing).check() == [TemplateProblem(str(missing), None, "not a directory")]

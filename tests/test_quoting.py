"""Quoted-reply and signature stripping: measured on the corpus, then one test per header style.

The corpus measurement compares `visible_text` with expected visible text after whitespace
normalisation. Expectations come from the fixtures' own projects where they exist (discourse
`trimmed/`, github PR #80's `expected_first_fragment.tsv`, talon's rule in `talon/EXPECTED.md`) and
otherwise from `tests/quoting_expected/`, written by hand by reading each message (see its README).
"""

from __future__ import annotations

import csv
import email
import quopri
from collections import Counter
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from helpers.corpusdata import LOCAL, corpus_file
from hypothesis import given
from hypothesis import strategies as st
from inscriptis import get_text

from daemon.mail.quoting import split_reply, visible_text

EXPECTED = Path(__file__).parent / "quoting_expected"
TARGET_LANGUAGES = ("en", "es", "fr", "de")
REQUIRED_RATE = 0.95
REQUIRED_CASES = 60


@dataclass(frozen=True)
class Case:
    name: str
    language: str
    text: str
    expected: str
    origin: str  # "upstream" (the fixture's project), "ours" (quoting_expected/), "override"


def _read(path: Path) -> str:
    return path.read_bytes().decode("utf-8").replace("\r\n", "\n")


def _first_plain_part(path: Path) -> str:
    with path.open("rb") as fh:
        message = email.message_from_binary_file(fh, policy=policy.default)
    assert isinstance(message, EmailMessage)
    part = next(p for p in message.walk() if p.get_content_type() == "text/plain")
    assert isinstance(part, EmailMessage)
    return str(part.get_content()).replace("\r\n", "\n")


def _languages() -> dict[str, str]:
    with (LOCAL / "INDEX.tsv").open(encoding="utf-8", newline="") as fh:
        rows = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        return {row["path"]: row["language"] for row in rows}


def _discourse(languages: dict[str, str]) -> list[Case]:
    root = LOCAL / "discourse-email_reply_trimmer"
    return [
        Case(
            f"discourse/{path.name}",
            languages.get(f"discourse-email_reply_trimmer/emails/{path.name}", ""),
            _read(path),
            _read(root / "trimmed" / path.name),
            "upstream",
        )
        for path in sorted((root / "emails").glob("*.txt"))
    ]


def _github_pr80(languages: dict[str, str]) -> list[Case]:
    root = LOCAL / "github-email_reply_parser" / "pr80"
    with (root / "expected_first_fragment.tsv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [
        Case(
            f"github/pr80/{row['file']}",
            languages.get(f"github-email_reply_parser/pr80/{row['file']}", ""),
            quopri.decodestring((root / row["file"]).read_bytes()).decode("utf-8").replace("\r\n", "\n"),
            row["expected_visible_reply"],
            "upstream",
        )
        for row in rows
    ]


def _talon() -> list[Case]:
    """talon's rule: the reply is `<name>_reply_text` when present, else "Hello". Those two files
    keep the signature (talon strips quotes only); our contract strips signatures too, so
    quoting_expected/talon/ overrides them with the signature removed."""
    root = LOCAL / "talon" / "standard_replies"
    cases = []
    for path in sorted(root.glob("*.eml")):
        override = EXPECTED / "talon" / f"{path.stem}.txt"
        reply_text = root / f"{path.stem}_reply_text"
        if override.exists():
            expected, origin = _read(override), "override"
        else:
            expected, origin = (_read(reply_text) if reply_text.exists() else "Hello"), "upstream"
        cases.append(Case(f"talon/{path.name}", "en", _first_plain_part(path), expected, origin))
    return cases


def _ours(languages: dict[str, str]) -> list[Case]:
    cases = []
    for expected in sorted(EXPECTED.glob("*/*.txt")):
        folder = expected.parent.name
        if folder == "talon" and (LOCAL / "talon" / "standard_replies" / f"{expected.stem}.eml").exists():
            continue  # an override, used by _talon
        source = next(
            path
            for path in (
                LOCAL / folder / expected.name,
                LOCAL / folder / f"{expected.stem}.eml",
            )
            if path.exists()
        )
        text = _first_plain_part(source) if source.suffix == ".eml" else _read(source)
        relative = f"{folder}/{source.name}"
        language = "en" if folder == "talon" else languages.get(relative, "")
        cases.append(Case(relative, language, text, _read(expected), "ours"))
    return cases


def corpus_cases() -> list[Case]:
    languages = _languages()
    return _discourse(languages) + _github_pr80(languages) + _talon() + _ours(languages)


def _normalised(text: str) -> str:
    return " ".join(text.split())


def _rate(good: int, total: int) -> str:
    return f"{good}/{total} = {100 * good / total:.1f}%"


def test_corpus_replies_are_stripped_to_the_expected_visible_text() -> None:
    cases = corpus_cases()
    failures = [c for c in cases if _normalised(visible_text(c.text)) != _normalised(c.expected)]
    failed = {c.name for c in failures}

    def group(key: str) -> str:
        return key if key in TARGET_LANGUAGES else "other"

    totals: Counter[str] = Counter()
    good: Counter[str] = Counter()
    for case in cases:
        for key in ("all", f"language {group(case.language)}", f"expectations {case.origin}"):
            totals[key] += 1
            good[key] += case.name not in failed
    target = [c for c in cases if c.language in TARGET_LANGUAGES]
    target_good = sum(c.name not in failed for c in target)
    report = [
        "quoted-reply stripping, exact match after whitespace normalisation:",
        f"  all corpus cases: {_rate(good['all'], totals['all'])}",
        f"  en/es/fr/de cases: {_rate(target_good, len(target))}",
        *(f"  {key}: {_rate(good[key], totals[key])}" for key in sorted(totals) if key != "all"),
        *(f"  MISS {c.name}" for c in failures),
    ]
    print("\n".join(report))

    assert len(target) >= REQUIRED_CASES, "\n".join(report)
    assert all(totals[f"language {lang}"] for lang in TARGET_LANGUAGES), "\n".join(report)
    assert good["all"] >= REQUIRED_RATE * totals["all"], "\n".join(report)
    assert target_good >= REQUIRED_RATE * len(target), "\n".join(report)


# --- the corpus's full .eml replies, including the copyleft ones when ../shared is there ----------

SHARED_REPLIES = [
    # (corpus path, first visible line, last visible line, first removed line)
    ("zammad/mail005.box", "Hallo Martin,", "John & Marc", "Am 07.05.2012 08:10, schrieb"),
    ("zammad/mail009.box", "Enjoy!", "-Martin", "--"),
    ("zammad/mail012.box", "Hallo Herr Edenhofer,", "Internet:", "-----Ursprüngliche Nachricht-----"),
    (
        "redmine/issue_update_with_quoted_reply_above.eml",
        "An update to the issue by the sender.",
        "platea dictumst.",
        "> --- Reply above.",
    ),
    (
        "redmine/issue_update_with_multiple_quoted_reply_above.eml",
        "An update to the issue by the sender.",
        "platea dictumst.",
        ">> > --- Reply above.",
    ),
    ("extended_email_reply_parser/email_de_8.eml", "Guten Abend,", "Viele Grüße", "Von:"),
    ("talon/reply-quotations-share-block.eml", "Hi Katharine.", "Joe XXX", "--- On Wed, 4/4/12"),
]


@pytest.mark.parametrize(("relative", "first", "last", "removed_first"), SHARED_REPLIES)
def test_full_eml_replies_keep_the_reply_and_drop_the_history(
    relative: str, first: str, last: str, removed_first: str
) -> None:
    path = corpus_file(relative)
    if path is None:
        pytest.skip(f"{relative} is only in ../shared/corpus")
    visible, removed = split_reply(_first_plain_part(path))
    lines = visible.split("\n")
    assert lines[0].strip().startswith(first)
    assert lines[-1].strip().startswith(last)
    assert not any(line.lstrip().startswith(">") for line in lines)
    assert next(line for line in removed.split("\n") if line.strip()).strip().startswith(removed_first)


def test_html_replies_converted_to_text_strip_like_plain_ones() -> None:
    """talon's HTML fixtures (Gmail, Outlook 2003-2010, Thunderbird, Windows Mail…) once turned into
    text the way the daemon does it, compared ignoring all whitespace as talon's EXPECTED.md says."""
    paths = sorted((LOCAL / "talon" / "html_replies").glob("*.html"))
    wrong = [
        p.name for p in paths if "".join(visible_text(get_text(_read(p))).split()) != "Hi.Iamfine.Thanks,Alex"
    ]
    assert len(paths) == 9
    assert wrong == []


# --- one test per quote-header style ---------------------------------------------------------

REPLY = "Hola, el pedido 1234 llegó roto.\nGracias"

HEADERS = {
    "gmail_en": "On Mon, Jan 3, 2022 at 10:15 AM Tienda Ejemplo <incidencias@example.com> wrote:",
    "gmail_es": "El lun, 3 ene 2022 a las 10:15, Tienda Ejemplo (<incidencias@example.com>) escribió:",
    "gmail_fr": "Le lun. 3 janv. 2022 à 10:15, Tienda Ejemplo <incidencias@example.com> a écrit :",
    "gmail_de": "Am Mo., 3. Jan. 2022 um 10:15 Uhr schrieb Tienda Ejemplo <incidencias@example.com>:",
    "gmail_en_wrapped": "On Mon, Jan 3, 2022 at 10:15 AM Tienda Ejemplo <\nincidencias@example.com> wrote:",
    "gmail_es_wrapped": (
        "El lun, 3 ene 2022 a las 10:15, Tienda Ejemplo (<incidencias@example.com>)\nescribió:"
    ),
    "gmail_de_name_first": (
        "Tienda Ejemplo <incidencias@example.com> schrieb am Mo., 3. Jan. 2022\num 10:15 Uhr:"
    ),
    "apple_en": "On 3 Jan 2022, at 10:15, Tienda Ejemplo <incidencias@example.com> wrote:",
    "apple_es": "El 3 ene 2022, a las 10:15, Tienda Ejemplo <incidencias@example.com> escribió:",
    "apple_fr": "Le 3 janv. 2022 à 10:15, Tienda Ejemplo <incidencias@example.com> a écrit :",
    "apple_de": "Am 03.01.2022 um 10:15 schrieb Tienda Ejemplo <incidencias@example.com>:",
    "thunderbird_en": "On 03/01/2022 10:15, Tienda Ejemplo wrote:",
    "thunderbird_es": "El 03/01/22 a las 10:15, Tienda Ejemplo escribió:",
    "thunderbird_fr": "Le 03/01/2022 à 10:15, Tienda Ejemplo a écrit :",
    "thunderbird_de": "Am 03.01.22 um 10:15 schrieb Tienda Ejemplo:",
    "outlook_desktop_en": (
        "-----Original Message-----\nFrom: Tienda Ejemplo <incidencias@example.com>\n"
        "Sent: Monday, January 3, 2022 10:15 AM\nTo: Ana <ana@example.org>\nSubject: RE: [#12] Pedido"
    ),
    "outlook_desktop_es": (
        "-----Mensaje original-----\nDe: Tienda Ejemplo <incidencias@example.com>\n"
        "Enviado el: lunes, 3 de enero de 2022 10:15\nPara: Ana <ana@example.org>\n"
        "Asunto: RE: [#12] Pedido"
    ),
    "outlook_desktop_fr": (
        "-----Message d'origine-----\nDe : Tienda Ejemplo <incidencias@example.com>\n"
        "Envoyé : lundi 3 janvier 2022 10:15\nÀ : Ana <ana@example.org>\nObjet : RE: [#12] Pedido"
    ),
    "outlook_desktop_de": (
        "-----Ursprüngliche Nachricht-----\nVon: Tienda Ejemplo <incidencias@example.com>\n"
        "Gesendet: Montag, 3. Januar 2022 10:15\nAn: Ana <ana@example.org>\nBetreff: AW: [#12] Pedido"
    ),
    "outlook_web_en": (
        "________________________________\nFrom: Tienda Ejemplo <incidencias@example.com>\n"
        "Sent: Monday, January 3, 2022 10:15\nTo: Ana <ana@example.org>\nSubject: [#12] Pedido"
    ),
    "outlook_web_es": (
        "________________________________\nDe: Tienda Ejemplo <incidencias@example.com>\n"
        "Enviado: lunes, 3 de enero de 2022 10:15\nPara: Ana <ana@example.org>\nAsunto: [#12] Pedido"
    ),
    "outlook_web_fr": (
        "________________________________\nDe : Tienda Ejemplo <incidencias@example.com>\n"
        "Envoyé : lundi 3 janvier 2022 10:15\nÀ : Ana <ana@example.org>\nObjet : [#12] Pedido"
    ),
    "outlook_web_de": (
        "________________________________\nVon: Tienda Ejemplo <incidencias@example.com>\n"
        "Gesendet: Montag, 3. Januar 2022 10:15\nAn: Ana <ana@example.org>\nBetreff: [#12] Pedido"
    ),
    "outlook_bold_es": (
        "*De:* Tienda Ejemplo [mailto:incidencias@example.com]\n*Enviado el:* lunes, 3 de enero de 2022"
        "\n*Para:* Ana\n*Asunto:* [#12] Pedido"
    ),
    "yahoo_es_wrapped": (
        "En lunes, 3 de enero de 2022 10:15:00 CET, Tienda Ejemplo <\nincidencias@example.com> escribió:"
    ),
    "yahoo_de": (
        "Am Montag, 3. Januar 2022, 10:15:00 MEZ hat Tienda Ejemplo <incidencias@example.com> "
        "Folgendes geschrieben:"
    ),
    "android_es": (
        "-------- Mensaje original --------\nDe: Tienda Ejemplo <incidencias@example.com>\n"
        "Fecha: 3/1/22 10:15 (GMT+01:00)\nA: ana@example.org\nAsunto: [#12] Pedido"
    ),
    "gmail_forward_es": (
        "---------- Mensaje reenviado ---------\nDe: Tienda Ejemplo <incidencias@example.com>\n"
        "Date: lun, 3 ene 2022 a las 10:15\nSubject: [#12] Pedido\nTo: <ana@example.org>"
    ),
}
QUOTED_HISTORY = "Hemos recibido su incidencia [#12].\nLe responderemos en breve."


@pytest.mark.parametrize("style", sorted(HEADERS))
def test_quote_header_and_history_below_it_are_cut(style: str) -> None:
    header = HEADERS[style]
    for history in (f"> {QUOTED_HISTORY.replace(chr(10), chr(10) + '> ')}", QUOTED_HISTORY):
        visible, removed = split_reply(f"{REPLY}\n\n{header}\n\n{history}\n")
        assert visible == REPLY
        assert removed.strip().startswith(header.split("\n")[0])


def test_apple_mail_mobile_quotes_the_attribution_itself() -> None:
    text = f"{REPLY}\n\n> El 3 ene 2022, a las 10:15, Tienda <incidencias@example.com> escribió:\n>\n> Hola\n"
    assert visible_text(text) == REPLY


def test_crlf_line_endings_are_handled_and_returned_as_lf() -> None:
    text = f"{REPLY}\n\n{HEADERS['gmail_es']}\n> hola\n".replace("\n", "\r\n")
    assert visible_text(text) == REPLY


def test_a_sentence_that_looks_like_an_attribution_but_has_no_date_is_kept() -> None:
    text = "El repartidor me escribió:\n\nque el paquete estaba en la oficina.\n"
    assert visible_text(text) == text.strip()


def test_a_shipping_note_with_from_and_to_lines_is_not_a_header_block() -> None:
    text = "Os paso los datos:\n\nDe: Madrid\nPara: Juan Pérez\nFecha: 3 de enero\n\nGracias"
    assert visible_text(text) == text


# --- '>' quoting ---------------------------------------------------------------------------------


def test_trailing_bare_quote_is_cut() -> None:
    assert visible_text(f"{REPLY}\n\n> Hemos recibido su incidencia.\n> Saludos\n") == REPLY


def test_inline_answers_keep_the_quotes_they_answer_and_drop_the_attribution() -> None:
    text = (
        "Hola,\n\n"
        f"{HEADERS['gmail_es']}\n"
        "> ¿Nos envía una foto del paquete?\n\n"
        "Adjunta va.\n\n"
        "> ¿Y el número de pedido?\n\n"
        "Es el 1234.\n\n"
        "> Un saludo,\n> Tienda\n"
    )
    assert visible_text(text) == (
        "Hola,\n\n> ¿Nos envía una foto del paquete?\n\nAdjunta va.\n\n"
        "> ¿Y el número de pedido?\n\nEs el 1234."
    )


def test_bottom_post_drops_the_attribution_and_the_quote_above_the_answer() -> None:
    text = f"{HEADERS['thunderbird_fr']}\n> Pouvez-vous envoyer une photo ?\n\nLa voici.\n"
    assert visible_text(text) == "La voici."


def test_a_forward_without_comment_shows_the_forwarded_text() -> None:
    text = f"{HEADERS['gmail_forward_es']}\n\nSu pedido 1234 ha sido enviado.\n"
    assert visible_text(text) == "Su pedido 1234 ha sido enviado."


def test_only_quoted_text_is_returned_whole_rather_than_empty() -> None:
    text = "> Hemos recibido su incidencia.\n> Saludos\n"
    assert visible_text(text) == text.strip()
    assert split_reply(text) == (text.strip(), "")


# --- signatures ---------------------------------------------------------------------------------

SIGNATURES = {
    "rfc_delimiter": "-- \nAna Pérez\nTel. 600 000 000",
    "delimiter_without_space": "--\nAna Pérez",
    "underscore_rule": "_____________________\nAna Pérez\nDepartamento de compras",
    "iphone_en": "Sent from my iPhone",
    "iphone_es": "Enviado desde mi iPhone",
    "iphone_es_latam": "Enviado de mi iPhone",
    "samsung_es": "Enviado desde mi smartphone Samsung Galaxy.",
    "outlook_es": "Enviado desde Outlook",
    "outlook_mobile_es": "Obtener Outlook para Android<https://aka.ms/ghei36>",
    "outlook_mobile_en": "Get Outlook for iOS<https://aka.ms/o0ukef>",
    "iphone_fr": "Envoyé de mon iPhone",
    "outlook_mobile_fr": "Envoyé à partir de Outlook pour iOS<https://aka.ms/o0ukef>",
    "iphone_de": "Von meinem iPhone gesendet",
    "mobile_de": "Gesendet von meinem Samsung Galaxy",
    "mail_app_de": "Gesendet mit der WEB.DE Mail App",
    "excuse_en": "Sent from my phone, please excuse typos.",
}


@pytest.mark.parametrize("style", sorted(SIGNATURES))
def test_signature_is_cut(style: str) -> None:
    visible, removed = split_reply(f"{REPLY}\n\n{SIGNATURES[style]}\n")
    assert visible == REPLY
    assert removed.strip() == SIGNATURES[style]


def test_signature_before_the_quote_header_is_cut_with_it() -> None:
    text = f"{REPLY}\n\nEnviado desde mi iPhone\n\n{HEADERS['apple_es']}\n\n> Hola\n"
    assert visible_text(text) == REPLY


@pytest.mark.parametrize(
    "line",
    [
        "Sent from my desk, is much easier then my mobile phone.",
        "Enviado desde mi casa el paquete, pero nunca llegó a su almacén de Madrid como me dijeron",
        "And here is a fix -- this is not a signature.",
    ],
)
def test_a_sentence_that_starts_like_a_signature_is_kept(line: str) -> None:
    text = f"{REPLY}\n\n{line}"
    assert visible_text(text) == text


# --- agent commands -----------------------------------------------------------------------------


def test_agent_command_at_the_top_survives() -> None:
    text = f"#close\n\nSolucionado, gracias.\n\n{HEADERS['gmail_es']}\n> Hola\n"
    assert visible_text(text) == "#close\n\nSolucionado, gracias."


def test_a_command_alone_above_outlook_history_survives() -> None:
    text = f"#close\n\n{HEADERS['outlook_web_es']}\n\n{QUOTED_HISTORY}"
    assert visible_text(text) == "#close"


def test_lines_starting_with_hash_inside_the_text_are_kept() -> None:
    text = "#nota\nEl cliente llamó.\n#####\nRevisar el lote #45"
    assert visible_text(text) == text


# --- split_reply keeps everything ---------------------------------------------------------------

LINE_POOL = [
    "Hola, el pedido no ha llegado.",
    "#close",
    "",
    "   ",
    "> texto citado",
    ">> más citado",
    "Richard> supercite",
    "-- ",
    "--",
    "____________",
    "Enviado desde mi iPhone",
    "On Mon, Jan 3, 2022 at 10:15 AM Tienda <a@example.com> wrote:",
    "El lun, 3 ene 2022 a las 10:15, Tienda (<a@example.com>)",
    "escribió:",
    "-----Mensaje original-----",
    "De: Tienda <a@example.com>",
    "Enviado: lunes, 3 de enero de 2022 10:15",
    "Para: Ana",
    "Asunto: Pedido",
    "Gracias",
]


@given(st.lists(st.sampled_from(LINE_POOL), max_size=25), st.sampled_from(["\n", "\r\n"]))
def test_split_reply_puts_every_line_on_one_side(lines: list[str], newline: str) -> None:
    text = newline.join(lines)
    visible, removed = split_reply(text)
    both = [line.strip() for line in f"{visible}\n{removed}".split("\n") if line.strip()]
    assert sorted(both) == sorted(line.strip() for line in lines if line.strip())
    assert visible == visible_text(text)
    if text.strip():
        assert visible.strip()

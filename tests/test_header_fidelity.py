"""Subjects, names and attachment names exactly as they were written (issue 13).

Reading: headers the way Outlook, Gmail, Thunderbird and Apple Mail write them (encoded word next
to a plain word, adjacent encoded words, folds, mixed charsets, Q and B, RFC 2231 names), each
asserting the exact text the parser gives. Writing: what compose and header_lines produce decodes
to exactly the text we meant with the stdlib, mail-parser, our own parser and Dovecot (a decoder
that shares no code with Python's), with no line over 78 characters.
"""
# The typographic dashes and quotes are the point of these cases, not look-alikes by mistake.
# ruff: noqa: RUF001

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage

import mailparser
import pytest
from helpers.mailservers import Dovecot

from daemon.mail.message import Attachment, ParsedMessage
from daemon.mail.parsing import parse
from daemon.outbound.compose import Copy, Thread, compose
from daemon.outbound.header_lines import address_line, text_line
from daemon.outbound.rendering import Rendered

SUBJECT = "La cafetera llegó rota — ¿me enviáis otra? Pedido nº 7781"
BEGONA = "Begoña Núñez Íñiguez"

# (case id, header lines as the client writes them, what is read, the exact text expected)
READING = [
    # Outlook: Windows-1252 or ISO-8859-1 Q words with "_" spaces, one per folded line; new
    # Outlook writes UTF-8 B words; RFC 2047 file names inside quotes.
    ("outlook-subject-cp1252-one-word",
     "Subject: =?Windows-1252?Q?La_cafetera_lleg=F3_rota_=97_=BFme_envi=E1is_otra=3F_Pedido_n=BA_7781?=",
     "subject", SUBJECT),
    ("outlook-subject-cp1252-two-folded-words",
     "Subject: =?Windows-1252?Q?La_cafetera_lleg=F3_rota_=97_=BFme_envi=E1is_?=\r\n"
     " =?Windows-1252?Q?otra=3F_Pedido_n=BA_7781?=",
     "subject", SUBJECT),
    ("outlook-subject-utf8-b-two-words",
     "Subject: =?utf-8?B?TGEgY2FmZXRlcmEgbGxlZ8OzIHJvdGEg4oCUIMK/bWUgZW52acOhaXMg?=\r\n"
     " =?utf-8?B?b3RyYT8gUGVkaWRvIG7CuiA3Nzgx?=",
     "subject", SUBJECT),
    ("outlook-subject-plain-prefix",
     "Subject: RE: =?iso-8859-1?Q?R=E9clamation_:_colis_ab=EEm=E9_=AB_urgent_=BB?=",
     "subject", "RE: Réclamation : colis abîmé « urgent »"),
    ("outlook-subject-mixed-charsets",
     "Subject: =?iso-8859-1?Q?Caf=E9_?= =?utf-8?Q?=E2=80=94_=C2=BFme?= otra?",
     "subject", "Café — ¿me otra?"),
    ("outlook-from-latin1", "From: =?iso-8859-1?Q?Bego=F1a_N=FA=F1ez?= <begona@example.es>",
     "from", "Begoña Núñez"),
    ("outlook-from-encoded-comma",
     "From: =?iso-8859-1?Q?M=FCller=2C_J=FCrgen?= <jm@example.de>", "from", "Müller, Jürgen"),
    ("outlook-to-two-mailboxes",
     "To: =?Windows-1252?Q?Fran=E7ois_Lef=E8vre?= <f@example.fr>, Soporte <soporte@example.es>",
     "to", "François Lefèvre|Soporte"),
    ("outlook-attachment-rfc2047-in-quotes",
     'Content-Type: application/pdf; name="=?iso-8859-1?Q?factura_n=BA_7781.pdf?="\r\n'
     'Content-Disposition: attachment; filename="=?iso-8859-1?Q?factura_n=BA_7781.pdf?="',
     "attachment", "factura nº 7781.pdf"),
    # Gmail: UTF-8 Q words split anywhere, even inside a word; B for scripts Q would bloat.
    ("gmail-subject-split-inside-word",
     "Subject: =?UTF-8?Q?La_cafetera_lleg=C3=B3_rota_=E2=80=94_=C2=BFme_envi=C3=A1is_otra=3F_P?=\r\n"
     " =?UTF-8?Q?edido_n=C2=BA_7781?=",
     "subject", SUBJECT),
    ("gmail-subject-cyrillic-b",
     "Subject: =?UTF-8?B?0JfQsNC60LDQtyDQvdC1INC/0YDQuNGI0ZHQuw==?=", "subject", "Заказ не пришёл"),
    ("gmail-subject-japanese-b-folded",
     "Subject: =?UTF-8?B?5rOo5paH44GM?=\r\n =?UTF-8?B?5bGK44GN44G+44Gb44KT?=",
     "subject", "注文が届きません"),
    ("gmail-subject-re-then-q",
     "Subject: Re: =?UTF-8?Q?Lieferung_besch=C3=A4digt_=E2=80=93_R=C3=BCckerstattung_f=C3=BCr_B?=\r\n"
     " =?UTF-8?Q?estellung_Nr=2E_4411?=",
     "subject", "Re: Lieferung beschädigt – Rückerstattung für Bestellung Nr. 4411"),
    ("gmail-from-q", "From: =?UTF-8?Q?Bego=C3=B1a_N=C3=BA=C3=B1ez_=C3=8D=C3=B1iguez?= <begona@gmail.com>",
     "from", BEGONA),
    ("gmail-from-quoted-ascii", "From: \"Jean-Pierre O'Neil\" <jp@gmail.com>", "from",
     "Jean-Pierre O'Neil"),
    ("gmail-cc-b", "Cc: =?UTF-8?B?w4dhxJ9sYSDDlnp0w7xyaw==?= <cagla@gmail.com>", "cc", "Çağla Öztürk"),
    ("gmail-attachment-q-name",
     'Content-Type: application/pdf; name="=?UTF-8?Q?factura_n=C2=BA_7781=2Epdf?="\r\n'
     'Content-Disposition: attachment; filename="=?UTF-8?Q?factura_n=C2=BA_7781=2Epdf?="',
     "attachment", "factura nº 7781.pdf"),
    # Thunderbird: only the words that need it are encoded, plain words between them, folded.
    ("thunderbird-subject-issue-13",
     "Subject: La cafetera =?UTF-8?Q?lleg=C3=B3_rota_=E2=80=94_=C2=BFme_envi=C3=A1is?=\r\n"
     " otra? Pedido =?UTF-8?Q?n=C2=BA?= 7781",
     "subject", SUBJECT),
    ("thunderbird-subject-encoded-then-plain-on-next-line",
     "Subject: =?UTF-8?Q?=C2=A1Gracias!?= Todo\r\n =?UTF-8?Q?lleg=C3=B3?= bien",
     "subject", "¡Gracias! Todo llegó bien"),
    ("thunderbird-subject-fr-trailing-word",
     "Subject: Re: =?UTF-8?Q?R=C3=A9clamation_=3A_colis_ab=C3=AEm=C3=A9_=C2=AB_urgent_?=\r\n"
     " =?UTF-8?Q?=C2=BB?=",
     "subject", "Re: Réclamation : colis abîmé « urgent »"),
    ("thunderbird-from-adjacent-words",
     "From: =?UTF-8?Q?Bego=C3=B1a_N=C3=BA=C3=B1ez?= =?UTF-8?Q?_=C3=8D=C3=B1iguez?= <b@example.es>",
     "from", BEGONA),
    ("thunderbird-from-fr", "From: =?UTF-8?Q?Fran=C3=A7ois_Lef=C3=A8vre?= <f@example.fr>", "from",
     "François Lefèvre"),
    ("thunderbird-reply-to",
     "Reply-To: =?UTF-8?Q?Service_client_=C2=AB_Caf=C3=A9s_Lef=C3=A8vre_=C2=BB?= <sav@example.fr>",
     "reply_to", "Service client « Cafés Lefèvre »"),
    ("thunderbird-attachment-rfc2231",
     "Content-Type: application/pdf\r\nContent-Disposition: attachment;\r\n"
     " filename*=UTF-8''factura%20n%C2%BA%207781%20%E2%80%94%20Bego%C3%B1a%20N%C3%BA%C3%B1ez.pdf",
     "attachment", "factura nº 7781 — Begoña Núñez.pdf"),
    ("thunderbird-attachment-rfc2231-continued",
     "Content-Type: application/pdf\r\nContent-Disposition: attachment;\r\n"
     " filename*0*=UTF-8''Best%C3%A4tigung%20f%C3%BCr%20;\r\n filename*1*=J%C3%BCrgen%20Gro%C3%9F.pdf",
     "attachment", "Bestätigung für Jürgen Groß.pdf"),
    # Apple Mail: lower-case utf-8 Q words split inside words, plain prefixes, RFC 2231 names
    # in the decomposed (NFD) form macOS gives file names.
    ("apple-subject-split-inside-word",
     "Subject: =?utf-8?Q?La_cafetera_lleg=C3=B3_rota_=E2=80=94_=C2=BFme_envi?=\r\n"
     " =?utf-8?Q?=C3=A1is_otra=3F_Pedido_n=C2=BA_7781?=",
     "subject", SUBJECT),
    ("apple-subject-plain-then-encoded",
     "Subject: Re: Pedido 7781 =?utf-8?Q?=E2=80=94_=C2=BFme_envi=C3=A1is_otra=3F?=",
     "subject", "Re: Pedido 7781 — ¿me enviáis otra?"),
    ("apple-from-q", "From: =?utf-8?Q?Bego=C3=B1a_N=C3=BA=C3=B1ez?= <begona@icloud.com>", "from",
     "Begoña Núñez"),
    ("apple-from-curly-apostrophe", "From: =?utf-8?Q?Ren=C3=A9e_d=E2=80=99Arc?= <renee@icloud.com>",
     "from", "Renée d’Arc"),
    ("apple-to-plain-and-encoded",
     "To: Tienda Ejemplo <incidencias@example.com>, =?utf-8?Q?Fran=C3=A7ois?= <f@example.fr>",
     "to", "Tienda Ejemplo|François"),
    ("apple-attachment-nfd",
     "Content-Type: application/pdf;\r\n\tname=\"Factura Nu\u0301n\u0303ez.pdf\"\r\n"
     "Content-Disposition: attachment;\r\n\tfilename*=utf-8''Factura%20Nu%CC%81n%CC%83ez.pdf",
     "attachment", "Factura Nu\u0301n\u0303ez.pdf"),
    ("apple-attachment-name-and-filename",
     'Content-Type: application/pdf;\r\n\tname="=?utf-8?Q?Bestellbest=C3=A4tigung_4411=2Epdf?="\r\n'
     "Content-Disposition: attachment;\r\n\tfilename*=utf-8''Bestellbest%C3%A4tigung%204411.pdf",
     "attachment", "Bestellbestätigung 4411.pdf"),
    # A Japanese mailer's ISO-2022-JP with a vendor character (NEC's circled 1) no codec knows:
    # the rest is still read, the unknown character shows as a replacement character.
    ("iso-2022-jp-vendor-character",
     "Subject: =?iso-2022-jp?B?GyRCLSEbKEIgGyRCNF0/dDt6JUYlOSVIGyhC?=", "subject",
     "\ufffd 丸数字テスト"),
    ("shift-jis-labelled-iso-2022-jp", "Subject: =?ISO-2022-JP?B?g2OBW4OL?=", "subject", "ツール"),
    # Webmails that write raw 8-bit headers.
    ("raw-utf8-subject", "Subject: Pedido roto — ¿me enviáis otra?", "subject",
     "Pedido roto — ¿me enviáis otra?"),
    ("raw-latin1-from", "From: Begoña Núñez <b@example.es>", "from-latin1", "Begoña Núñez"),
]


def _message(headers: str, *, latin1: bool = False) -> bytes:
    """A whole message around the case's header lines (an attachment part when they describe one)."""
    head = {line.split(":", 1)[0].lower() for line in headers.split("\r\n") if ":" in line}
    top = [] if "from" in head else ["From: cliente@example.es"]
    top += ["To: incidencias@example.com"] if "to" not in head else []
    top += ["Message-ID: <case@example.es>", "MIME-Version: 1.0"]
    if "content-disposition" in head:
        body = ("Content-Type: multipart/mixed; boundary=b1\r\n\r\n--b1\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n\r\nHola\r\n--b1\r\n"
                f"{headers}\r\nContent-Transfer-Encoding: base64\r\n\r\nJVBERi0=\r\n--b1--\r\n")
        return "\r\n".join(top).encode() + b"\r\n" + body.encode()
    charset = "iso-8859-1" if latin1 else "utf-8"
    text = "\r\n".join([*top, headers, f"Content-Type: text/plain; charset={charset}", "", "Hola", ""])
    return text.encode("latin-1" if latin1 else "utf-8")


def _read(parsed: ParsedMessage, what: str) -> str:
    if what == "subject":
        return parsed.subject
    if what in ("from", "from-latin1"):
        return parsed.sender.name
    if what == "attachment":
        return "|".join(a.filename for a in parsed.attachments)
    return "|".join(a.name for a in getattr(parsed, what))


@pytest.mark.parametrize(("headers", "what", "expected"), [c[1:] for c in READING],
                         ids=[c[0] for c in READING])
def test_reading_gives_exactly_what_the_client_wrote(headers: str, what: str, expected: str) -> None:
    parsed, _ = parse(_message(headers, latin1=what == "from-latin1"))
    assert _read(parsed, what) == expected


# What we write: subjects up to 250 characters and display names, es/fr/de, «», ¿¡, dashes.
LONG_ES = ("[#7781] Re: La cafetera llegó rota — ¿me enviáis otra? Pedido nº 7781 del día 3, "
           "la caja venía abollada, el cristal de la jarra está partido y falta la cápsula de "
           "regalo; ¿podéis recogerla mañana por la mañana? ¡Gracias! Begoña Núñez Íñiguez")
LONG_FR = ("[#512] Réclamation : colis abîmé « très urgent » — la théière en fonte émaillée est "
           "arrivée fêlée, l’emballage était déchiré ; pourriez-vous m’envoyer une nouvelle "
           "théière ou me rembourser ? Merci d’avance, Françoise Lefèvre-Dubœuf")
LONG_DE = ("[#4411] AW: Lieferung beschädigt – Rückerstattung für Bestellung Nr. 4411: Die "
           "Kaffeemühle kam mit gebrochenem Mahlwerk an, außerdem fehlt die Bedienungsanleitung; "
           "bitte um Ersatz oder Gutschrift. Grüße, Jürgen Groß aus Düsseldorf")
SUBJECTS = [
    ("issue-13", SUBJECT),
    ("tagged", f"[#7781] Re: {SUBJECT}"),
    ("long-es", LONG_ES),
    ("long-fr", LONG_FR),
    ("long-de", LONG_DE),
    ("openers-and-quotes", "¿¡Qué pasó?! «Ñandú» — pingüino, acción, “comillas” y ‘apóstrofos’ "
                           "¿Envío urgente? ¡Sí! «Gracias» — Año 2026, señor Muñoz"),
    ("ascii-long", "[#12] Re: Order 4411 arrived damaged and the replacement never came, "
                   "please refund the full amount including shipping and the gift wrapping fee "
                   "as promised in your previous message"),
    ("encoded-word-lookalike", "Pedido =?utf-8?q?x?= llegó roto"),
    ("cyrillic-japanese", "Заказ не пришёл — 注文が届きません — Заказ номер 7781 всё ещё в пути, "
                          "пожалуйста помогите"),
    ("long-word", "Seguimiento: https://tracking.example.es/envios/7781?codigo=ABCDEFGHIJKLMNOP"
                  "QRSTUVWXYZ0123456789abcdefghij — ¿dónde está?"),
]
NAMES = [
    ("begona", BEGONA),
    ("agent-notification", f"{BEGONA} via Tienda Ejemplo"),
    ("comma", "Müller, Jürgen"),
    ("ascii-quotes", 'Jean "le" Dupont'),
    ("long-es-name", "María de los Ángeles Fernández-Villaverde y Sánchez-Ocaña"),
    ("fr-apostrophe", "Françoise d’Arc «SAV»"),
]


def _written(subject: str, names: list[str]) -> bytes:
    """Header lines as compose writes them: Subject by text_line, To by address_line."""
    to = [(name, f"persona{n}@example.com") for n, name in enumerate(names)]
    return (text_line("Subject", subject) + address_line("To", to)
            + "From: incidencias@example.com\r\nMessage-ID: <w@example.com>\r\n\r\nHola\r\n").encode()


def _assert_short_lines(raw: bytes) -> None:
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78, head.decode()


def _dovecot_reads(imap: Dovecot, raw: bytes, *fields: str) -> dict[str, str]:
    imap.append("customer1", raw)
    return imap.decoded_headers("customer1", fields)[-1]


@pytest.mark.parametrize("subject", [s for _, s in SUBJECTS], ids=[i for i, _ in SUBJECTS])
def test_written_subject_decodes_to_what_we_meant_everywhere(imap: Dovecot, subject: str) -> None:
    raw = _written(subject, [])
    _assert_short_lines(raw)
    stdlib = message_from_bytes(raw, policy=policy.default)
    assert isinstance(stdlib, EmailMessage)
    assert str(stdlib["Subject"]) == subject
    # mail-parser leaves a folded plain-ASCII value folded: unfolding (RFC 5322 §2.2.3) is ours.
    assert mailparser.parse_from_bytes(raw).subject.replace("\r\n", "") == subject
    # Our own reader breaks up "=?" on purpose (parsing.clean_header_text).
    assert parse(raw)[0].subject == subject.replace("=?", "= ?")
    assert _dovecot_reads(imap, raw, "Subject")["Subject"] == subject


@pytest.mark.parametrize("name", [n for _, n in NAMES], ids=[i for i, _ in NAMES])
def test_written_display_name_decodes_to_what_we_meant_everywhere(imap: Dovecot, name: str) -> None:
    raw = _written("Hola", [name, "Tienda Ejemplo"])
    _assert_short_lines(raw)
    stdlib = message_from_bytes(raw, policy=policy.default)
    assert isinstance(stdlib, EmailMessage)
    assert [a.display_name for a in stdlib["To"].addresses] == [name, "Tienda Ejemplo"]
    assert [n for n, _ in mailparser.parse_from_bytes(raw).to] == [name, "Tienda Ejemplo"]
    assert [a.name for a in parse(raw)[0].to] == [name, "Tienda Ejemplo"]
    dovecot = _dovecot_reads(imap, raw, "To")["To"]
    shown = name if '"' not in name else '"' + name.replace('"', '\\"') + '"'
    assert dovecot == f"{shown} <persona0@example.com>, Tienda Ejemplo <persona1@example.com>"


def test_composed_acknowledgement_keeps_subject_and_names_for_every_reader(imap: Dovecot) -> None:
    """The whole path: compose() with a long customer subject and an agent-style From name."""
    subject = f"Re: {LONG_ES}"[:250]
    [mail] = compose(kind="ack", ticket=7781, shop_name="Tienda Ejemplo",
                     shop_address="incidencias@example.com",
                     copies=[Copy(to=((BEGONA, "begona@example.es"),))],
                     rendered=Rendered(subject=subject, text="Hola", html="<p>Hola</p>"),
                     language="es", thread=Thread(in_reply_to="c@example.es"), automatic=None,
                     now=datetime(2026, 12, 6, tzinfo=UTC), from_name=f"{BEGONA} via Tienda Ejemplo")
    _assert_short_lines(mail.raw)
    parsed = parse(mail.raw)[0]
    assert parsed.subject == subject
    assert (parsed.sender.name, [a.name for a in parsed.to]) == (f"{BEGONA} via Tienda Ejemplo", [BEGONA])
    assert mailparser.parse_from_bytes(mail.raw).subject == subject
    decoded = _dovecot_reads(imap, mail.raw, "Subject", "From", "To")
    assert decoded == {"Subject": subject, "From": f"{BEGONA} via Tienda Ejemplo <incidencias@example.com>",
                       "To": f"{BEGONA} <begona@example.es>"}


def test_dovecot_catches_the_space_the_stdlib_folder_used_to_lose(imap: Dovecot) -> None:
    """The second decoder is not a rubber stamp: the fold CPython used to write (the space as
    the white space between two encoded words) reads "enviáisotra" in Dovecot too."""
    raw = (b"Subject: =?utf-8?q?La_cafetera_lleg=C3=B3_rota_=E2=80=94_=C2=BFme_envi=C3=A1is?=\r\n"
           b" =?utf-8?q?otra=3F?=\r\nFrom: a@example.com\r\n\r\nHola\r\n")
    assert _dovecot_reads(imap, raw, "Subject")["Subject"] == "La cafetera llegó rota — ¿me enviáisotra?"


ATTACHMENT_NAMES = [
    ("es-short", "factura nº 7781 — Begoña Núñez.pdf"),
    ("fr-long", "Réclamation « théière fêlée » – photos de l’emballage déchiré et du colis abîmé, "
                "reçu le 3 décembre.jpg"),
    ("de", "Bestätigung für Jürgen Groß.pdf"),
    ("ascii", "plain-ascii-name.txt"),
]


@pytest.mark.parametrize("name", [n for _, n in ATTACHMENT_NAMES], ids=[i for i, _ in ATTACHMENT_NAMES])
def test_written_attachment_name_decodes_to_what_we_meant(name: str) -> None:
    [mail] = compose(kind="agent-reply", ticket=1, shop_name="Tienda Ejemplo",
                     shop_address="incidencias@example.com",
                     copies=[Copy(to=((BEGONA, "begona@example.es"),))],
                     rendered=Rendered(subject="Factura", text="Adjunta.", html="<p>Adjunta.</p>"),
                     language="es", thread=Thread(), automatic=None,
                     now=datetime(2026, 12, 6, tzinfo=UTC),
                     attachments=[Attachment(filename=name, content_type="application/pdf",
                                             content=b"%PDF-1.4")])
    _assert_short_lines(mail.raw)
    stdlib = message_from_bytes(mail.raw, policy=policy.default)
    assert isinstance(stdlib, EmailMessage)
    assert [part.get_filename() for part in stdlib.iter_attachments()] == [name]
    assert [a["filename"] for a in mailparser.parse_from_bytes(mail.raw).attachments] == [name]
    assert [a.filename for a in parse(mail.raw)[0].attachments] == [name]


def test_an_internationalised_address_in_raw_utf8_is_read_as_text_not_escaped_bytes() -> None:
    parsed, _ = parse(_message("From: Jörg <jdöe@mächine.example>"))
    assert (parsed.sender.name, parsed.sender.email) == ("Jörg", "jdöe@mächine.example")


def test_an_encoded_word_where_the_address_should_be_is_never_decoded_into_an_address() -> None:
    parsed, _ = parse(_message("From: Jörg <=?utf-8?q?jd=C3=B6e?=@example.net>"))
    assert "jdöe" not in parsed.sender.email

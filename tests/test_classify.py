"""Loop and auto-reply protection: which incoming mail is automatic, proven on the corpus and by rule."""

from __future__ import annotations

import email
import email.policy
from email.message import Message
from email.policy import Policy

import pytest
from helpers.corpusdata import CorpusMessage, corpus_messages
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.mail.classify import Classification, Kind, classify

SHOP = "incidencias@tienda.example"
POLICIES = [email.policy.compat32, email.policy.default]

# --------------------------------------------------------------------------- the corpus

_CORPUS = corpus_messages()
_AUTOMATIC = [m for m in _CORPUS if m.category in ("bounce", "autoreply")]
_REPLIES = [m for m in _CORPUS if m.category == "reply"]
_OTHERS = [m for m in _CORPUS if m.category not in ("bounce", "autoreply", "reply")]

_BY_CATEGORY = {"bounce": Kind.BOUNCE, "autoreply": Kind.AUTOREPLY}

# Samples whose INDEX.tsv category is not what they are; each says why.
_KIND_EXCEPTIONS: dict[str, tuple[Kind, str]] = {
    "flanker/complaints/aol.eml": (
        Kind.REPORT,
        "an ARF abuse complaint (report-type=feedback-report), not a delivery failure",
    ),
    "sisimai-set-of-emails/bsd/arf-01.eml": (
        Kind.REPORT,
        "an ARF abuse complaint (report-type=feedback-report), not a delivery failure",
    ),
    "bounceparser/boxbe-cr.msg": (
        Kind.BOUNCE,
        "Boxbe's challenge-response comes as a well-formed RFC 3464 DSN (Action: failed,"
        " Status: 4.7.0); it is a temporary bounce whose diagnostic tells the agent what to do",
    ),
}

# What each bounce sample says about the mail that bounced, read by hand from the file:
# (Message-ID of the returned message, failed recipient). None where the sample does not say:
# no returned copy, a copy without a Message-ID, or no recipient at all (msg_05 is a stub).
# Where a DSN gives Original-Recipient, that is the address the sender used and the one expected.
_BOUNCE_DETAILS: dict[str, tuple[str | None, str | None]] = {
    "zammad/mail018.box": ("20131115125507.4636.975502@portal.znuny.com", "m.smith@example.com"),
    "zammad/mail033-undelivered-mail-returned-to-sender.box": (
        "20150830145601.30.608881@edenhofer.zammad.com",
        "not_existing@znuny.com",
    ),
    "zammad/mail053.box": ("20170227103514.188.920664@help.example.com", "john_example@example.com"),
    "zammad/mail055.box": (
        "20170526150141.232.13312@example.zammad.loc",
        "ticket-bounce-trigger2@example.com",
    ),
    "zammad/mail078.box": ("20150830145601.30.608881@example.com", "bob.smith@example.de"),
    "chatwoot/bounced_gmail.eml": (
        "conversation/93775311-9416-4428-964b-862001f8a8b2/messages/27855337@gmail.com",
        "alex.jones@fictionalcorp.com",
    ),
    "chatwoot/bounced_with_no_from.eml": (None, "noreply@example-service.com"),
    "cpython-test_email/msg_05.txt": (None, None),
    "cpython-test_email/msg_16.txt": (
        "002001c144a6$8752e060$56104586@oxy.edu",
        "jangel1@cougar.noc.ucla.edu",
    ),
    "cpython-test_email/msg_25.txt": ("01040616033903.00962@server", "scoffman@wellpartner.com"),
    "cpython-test_email/msg_43.txt": ("edab.7804f5cb8070@python.org", "xxxxxxx@dot.ca.gov"),
    "ruby-mail/multipart_report_emails/multi_address_bounce1.eml": (
        "118707422.15521266992174819.JavaMail.root@lvmail01",
        "bbbbvhvbbvkjbhfbvbvjhb@gmail.com",
    ),
    "ruby-mail/multipart_report_emails/multipart_report_multiple_status.eml": (
        "4c2a146147ac8_61ff157c4ec1652df@s.h.c.mail",
        "u@ci.com",
    ),
    "ruby-mail/multipart_report_emails/report_422.eml": (
        "15655788.13.1200472642578.JavaMail.Administrator@mail.ttttt.com.au",
        "fraser@oooooooo.com.au",
    ),
    "ruby-mail/multipart_report_emails/report_530.eml": (
        "200712232303.lBNN3jDq002941@mail12.rrrr.com.au",
        "edwin@zzzzzzz.com",
    ),
    "flanker/bounce/broken-mime.eml": (None, "info@example.net"),
    "flanker/bounce/delayed.eml": (None, "foo@example.com"),
    "flanker/bounce/gmail-invalid-address.eml": (
        "CAKsfaBUUGqVZiaMrmH3TRPfq1odQPtM7Ey5YW1SgyJJRHtAjgw@mail.gmail.com",
        "awfawfawfawfawfaw@someserverhere.com",
    ),
    "flanker/bounce/mailbox-full.eml": ("4E326A95.3010907@example.com", "user@aol.com"),
    "flanker/bounce/office365.eml": (
        "20171013111011.20866.254C2F3A4D7AA526@ninomail.com",
        "noname@example.com",
    ),
    "enmime/dsn/testdata/dsn_with_multipart_alternative.raw": (None, "non-existing@example.com"),
    "request-tracker/multipart-report": (
        "200308221615.h7MGFGac020135@mx12.other.example.com",
        "jesmund@mailbox.other.example.com",
    ),
    "spamscope-mail-parser/mail_malformed_2": (
        "004801d1fc84$01c934ac$b247f0b7$@infospacemail.com",
        "abh@netpar.com.br",
    ),
    "sisimai-set-of-emails/bsd/rfc3464-04.eml": (
        "00000000000.000000@mx4.example.co.jp",
        "kijitora@mailx-53.neko.example.edu",
    ),
    "sisimai-set-of-emails/bsd/lhost-postfix-01.eml": (None, "kijitora@example.org"),
    "sisimai-set-of-emails/bsd/lhost-exim-01.eml": (
        "E1P1ce6-000Egt-GZ@e1.example.org",
        "kijitora@example.ed.jp",
    ),
    "sisimai-set-of-emails/bsd/lhost-sendmail-01.eml": (
        "E1C50F1B-1C83-4820-BC36-AC6FBFBE8568@example.org",
        "userunknown@bouncehammer.jp",
    ),
    "sisimai-set-of-emails/bsd/lhost-qmail-01.eml": (
        "000000000.9999999999999.JavaMail.postmaster@mailhub",
        "kijitora@example.ne.jp",
    ),
    "sisimai-set-of-emails/bsd/lhost-exchange2007-01.eml": (None, "mikeneko@example.co.jp"),
    "sisimai-set-of-emails/bsd/lhost-office365-04.eml": (
        "SLXP216MB0381A8F03A83505296890D11A9950@SLXP216MB0381.KORP216.PROD.OUTLOOK.COM",
        "otsu-sakaba-hunter-neko-nyaaaaaaan@ezweb.ne.jp",
    ),
    "sisimai-set-of-emails/bsd/lhost-gmail-01.eml": (
        "D992C2C3-F175-4C4D-97E2-53A90E4E5BF5@gmail.com",
        "userunknown@example.jp",
    ),
    "sisimai-set-of-emails/bsd/lhost-googlegroups-01.eml": (
        "D0E3D626-1C96-4749-8101-62C0CE13B1D5@example.jp",
        "libsisimai@googlegroups.com",
    ),
    "sisimai-set-of-emails/bsd/lhost-yahoo-01.eml": (
        "6AE6249A-E7A8-4980-862C-F499F6B8E7C5@y.example.co.jp",
        "kijitora@example.org",
    ),
    "sisimai-set-of-emails/bsd/lhost-mailru-01.eml": (
        "8F3CE2D8-D60E-48C3-B9AF-BED628EE2CA5@mail.example.ru",
        "kijitora@example.jp",
    ),
    "sisimai-set-of-emails/bsd/lhost-yandex-01.eml": (
        "446281417885946@web20h.yandex.ru",
        "kijitora@example.jp",
    ),
    "sisimai-set-of-emails/bsd/lhost-domino-01.eml": (None, "kijitora@example.jp"),
    "sisimai-set-of-emails/bsd/lhost-einsundeins-02.eml": (
        "eeeeeeee.neko.000000000nyaaan-00@smtp.example.jp",
        "kijitora@example.org",
    ),
    "sisimai-set-of-emails/bsd/lhost-gmx-01.eml": (
        "trinity-d174cb7e-d4a8-4dd5-8b53-7a9f70928e75-1417217529360@3capp-mailcom-lxa02",
        "shironeko@example.jp",
    ),
    "sisimai-set-of-emails/bsd/rhost-franceptt-01.eml": (
        "20FA40A8-4F88-4453-953D-B7038769D040@example.co.jp",
        "pseudo-local-part-kijitora-nyaaan@orange.fr",
    ),
    "sisimai-set-of-emails/not/rb-issue-368-bug.eml": (
        "68e0b7e3615cd_1dc7010592ed@7cf4d87f87-9r5w2.mail",
        "xxxx@yyyyyy.net",
    ),
    "sisimai-set-of-emails/dos/lhost-postfix-01.eml": (None, "kijitora@example.org"),
    "bounceparser/boxbe-cr.msg": (
        "20101115133429.70E0916581C3@server4.example.co.uk",
        "bloggs.fred@googlemail.com",
    ),
    "bounceparser/exchange.unknown.msg": (
        "200602150853.k1F8rvvX006268@somehost.example.com",
        "recipient@example.net",
    ),
    "bounceparser/domino.unknown.msg": (None, "recipient@example.net"),
    "bounceparser/iis-multiple-bounce.msg": (
        "CNISERVERTrpwACkWHZ00000098@smtp.example.com",
        "bounced1@example.net",
    ),
    "bounceparser/postfix-malformed.msg": ("42@server4.example.co.uk", "exampleuser@yyahoo.com"),
    "flufl-bounce/groupwise_01.txt": (
        "20010720085308.H17468@magic.merlins.org",
        "thoff@mainex1.asu.edu",
    ),
    "flufl-bounce/netscape_01.txt": ("392C2D67.C072CDA8@yahoo.com", "aaaaa@corel.com"),
    "flufl-bounce/microsoft_01.txt": (
        "5.1.1.5.2.20021004224506.00bd9ff8@mail.chello.se",
        "djbennett@ikon.com",
    ),
    "flufl-bounce/newmailru_01.txt": ("3A2FEB05.5E9531C4@san.rr.com", "zzzzz@newmail.ru"),
    "flufl-bounce/sina_01.txt": ("F128rzvsTDWWcuZcGwM00012d40@hotmail.com", "boboman76@sina.com"),
    "flufl-bounce/simple_38.txt": (None, "foo@mail.ru"),
}

# Delay notices and hard failures among the samples, as their DSN Status or wording says.
_PERMANENCE: dict[str, bool] = {
    "zammad/mail078.box": False,  # "Delivery Status Notification (Delay)", Status 4.4.1
    "ruby-mail/multipart_report_emails/report_422.eml": False,  # sendmail warning, 4.2.2
    "flanker/bounce/delayed.eml": False,
    "zammad/mail033-undelivered-mail-returned-to-sender.box": True,  # 5.1.1 user unknown
    "sisimai-set-of-emails/bsd/lhost-qmail-01.eml": True,  # "This is a permanent error"
    "bounceparser/domino.unknown.msg": True,  # "not listed in Domino Directory"
}

# Every other corpus message is HUMAN, except these (INDEX category in brackets).
_OTHER_AUTOMATIC: dict[str, tuple[Kind, str]] = {
    "zammad/mail043.box": (Kind.BULK, "[list] marketing mail with List-Unsubscribe"),
    "zammad/mail094.box": (Kind.AUTOREPLY, "[attachment] SAP system mail from noreply@"),
    "cpython-test_email/msg_32.txt": (Kind.BULK, "[list] list copy, Precedence: bulk"),
    "ruby-mail/error_emails/empty_in_reply_to.eml": (Kind.BULK, "[malformed] carries List-Id"),
    "ruby-mail/error_emails/encoding_madness.eml": (Kind.AUTOREPLY, "[malformed] CRM no-reply@"),
    "flanker/disposition-notification.eml": (Kind.REPORT, "[other] read receipt (MDN)"),
    "flanker/from-encoding.eml": (Kind.BULK, "[list] list copy, Precedence: bulk"),
    "flanker/apache-message-news-mime.eml": (Kind.BULK, "[forward] list copy, Precedence: bulk"),
    "enmime/testdata/mail/multipart-wo-boundary.raw": (
        Kind.BOUNCE,
        "[malformed] a DSN from Mailer-Daemon without a boundary",
    ),
    "spamscope-mail-parser/mail_test_5": (Kind.BULK, "[html] newsletter with List-Unsubscribe"),
    "spamscope-mail-parser/mail_test_6": (Kind.BULK, "[list] newsletter with List-Id"),
    "spamscope-mail-parser/mail_test_13": (Kind.BULK, "[list] MailChimp newsletter"),
    "sisimai-set-of-emails/mac/lhost-postfix-01.eml": (
        Kind.BOUNCE,
        "[malformed] the Postfix bounce with CR-only line ends",
    ),
}


def _read(sample: CorpusMessage, policy: Policy = email.policy.compat32) -> Classification:
    message = email.message_from_bytes(sample.file.read_bytes(), policy=policy)
    return classify(message, [SHOP])


def _expected_kind(sample: CorpusMessage) -> Kind:
    if sample.path in _KIND_EXCEPTIONS:
        return _KIND_EXCEPTIONS[sample.path][0]
    return _BY_CATEGORY[sample.category]


def _ids(samples: list[CorpusMessage]) -> list[str]:
    return [s.path for s in samples]


@pytest.mark.parametrize("sample", _AUTOMATIC, ids=_ids(_AUTOMATIC))
def test_corpus_bounces_and_autoreplies_are_classified(sample: CorpusMessage) -> None:
    result = _read(sample)
    assert result.kind is _expected_kind(sample), result.reason
    assert result.automatic


@pytest.mark.parametrize(
    "sample",
    [m for m in _AUTOMATIC if _expected_kind(m) is Kind.BOUNCE],
    ids=_ids([m for m in _AUTOMATIC if _expected_kind(m) is Kind.BOUNCE]),
)
def test_corpus_bounce_names_the_returned_message_and_recipient(sample: CorpusMessage) -> None:
    assert sample.path in _BOUNCE_DETAILS, "every bounce sample needs its expected details"
    expected_id, expected_recipient = _BOUNCE_DETAILS[sample.path]
    result = _read(sample)
    assert (result.original_message_id, result.recipient) == (expected_id, expected_recipient)
    if sample.path in _PERMANENCE:
        assert result.permanent is _PERMANENCE[sample.path]
    if result.diagnostic is not None:
        assert "\n" not in result.diagnostic and len(result.diagnostic) <= 300


@pytest.mark.parametrize("sample", _REPLIES, ids=_ids(_REPLIES))
def test_corpus_customer_reply_is_human(sample: CorpusMessage) -> None:
    result = _read(sample)
    assert result.kind is Kind.HUMAN, result.reason


@pytest.mark.parametrize("sample", _OTHERS, ids=_ids(_OTHERS))
def test_corpus_other_mail_is_human_unless_listed(sample: CorpusMessage) -> None:
    expected = _OTHER_AUTOMATIC.get(sample.path, (Kind.HUMAN, ""))[0]
    result = _read(sample)
    assert result.kind is expected, result.reason


@pytest.mark.parametrize("sample", _CORPUS, ids=_ids(_CORPUS))
def test_corpus_verdict_is_the_same_under_both_email_policies(sample: CorpusMessage) -> None:
    assert _read(sample, email.policy.default) == _read(sample, email.policy.compat32)


def test_corpus_summary(capsys: pytest.CaptureFixture[str]) -> None:
    right = sum(_read(m).kind is _expected_kind(m) for m in _AUTOMATIC)
    wrong_humans = sum(_read(m).kind is not Kind.HUMAN for m in _REPLIES)
    with capsys.disabled():
        print(
            f"\nclassified {right}/{len(_AUTOMATIC)} automatic samples correctly, "
            f"{wrong_humans}/{len(_REPLIES)} human replies misclassified"
        )
    assert _AUTOMATIC and _REPLIES
    assert (right, wrong_humans) == (len(_AUTOMATIC), 0)


# --------------------------------------------------------------------------- rules, one by one


def parse(text: str, policy: Policy = email.policy.compat32) -> Message:
    return email.message_from_bytes(text.encode(), policy=policy)


def customer(*extra: str, subject: str = "Pedido 1234 no ha llegado") -> str:
    headers = "\n".join(extra)
    return (
        "From: Marta Ruiz <marta@cliente.example>\n"
        f"To: {SHOP}\n"
        f"Subject: {subject}\n"
        "Message-ID: <abc@cliente.example>\n"
        + (headers + "\n" if headers else "")
        + "\nHola, el pedido no ha llegado todavía.\n"
    )


def verdict(text: str, policy: Policy = email.policy.compat32) -> Classification:
    return classify(parse(text, policy), [SHOP])


def test_plain_customer_mail_is_human() -> None:
    result = verdict(customer())
    assert result.kind is Kind.HUMAN
    assert not result.automatic


def test_auto_submitted_no_is_human() -> None:
    assert verdict(customer("Auto-Submitted: no")).kind is Kind.HUMAN
    assert verdict(customer("Auto-Submitted: no (sent by hand)")).kind is Kind.HUMAN


@pytest.mark.parametrize(
    "value", ["auto-replied", "auto-generated", "auto-notified", "Auto-Replied (vacation)"]
)
def test_auto_submitted_other_than_no_is_autoreply(value: str) -> None:
    result = verdict(customer(f"Auto-Submitted: {value}"))
    assert result.kind is Kind.AUTOREPLY
    assert "Auto-Submitted" in result.reason


@pytest.mark.parametrize("header", ["X-Autoreply: yes", "X-Autorespond: vacation", "Precedence: auto_reply"])
def test_vendor_autoreply_headers_are_autoreply(header: str) -> None:
    assert verdict(customer(header)).kind is Kind.AUTOREPLY


def test_x_autoreply_no_is_human() -> None:
    assert verdict(customer("X-Autoreply: no")).kind is Kind.HUMAN


@pytest.mark.parametrize("value", ["bulk", "junk", "list", "Bulk"])
def test_precedence_bulk_junk_list_is_bulk(value: str) -> None:
    assert verdict(customer(f"Precedence: {value}")).kind is Kind.BULK


@pytest.mark.parametrize(
    "header",
    ["List-Id: Ofertas <ofertas.tienda.example>", "List-Unsubscribe: <mailto:baja@news.example>"],
)
def test_list_headers_are_bulk(header: str) -> None:
    assert verdict(customer(header)).kind is Kind.BULK


def test_precedence_first_class_is_human() -> None:
    assert verdict(customer("Precedence: first-class")).kind is Kind.HUMAN


def test_empty_return_path_is_automatic() -> None:
    result = verdict(customer("Return-Path: <>"))
    assert result.kind is Kind.AUTOREPLY
    assert "Return-Path" in result.reason


def test_empty_return_path_with_failure_subject_is_bounce() -> None:
    result = verdict(customer("Return-Path: <>", subject="Undeliverable: Pedido 1234"))
    assert result.kind is Kind.BOUNCE


@pytest.mark.parametrize(
    "sender",
    [
        "MAILER-DAEMON@mx.example.net",
        "Mail Delivery System <mailer-daemon@mx.example.net>",
        "MAILER-DAEMON (Mail Delivery System)",
    ],
)
def test_mailer_daemon_sender_is_bounce(sender: str) -> None:
    raw = customer(subject="Aviso").replace("From: Marta Ruiz <marta@cliente.example>", f"From: {sender}")
    assert verdict(raw).kind is Kind.BOUNCE


def test_postmaster_without_failure_signs_is_automatic_but_not_bounce() -> None:
    raw = customer(subject="Aviso").replace(
        "Marta Ruiz <marta@cliente.example>", "postmaster@cliente.example"
    )
    assert verdict(raw).kind is Kind.AUTOREPLY


@pytest.mark.parametrize(
    "address",
    [
        "noreply@marketplace.example",
        "no-reply@pagos.example",
        "do-not-reply@x.example",
        "no-responder@correos.example",
        "ne-pas-repondre@colis.example",
    ],
)
def test_no_reply_sender_is_automatic(address: str) -> None:
    raw = customer().replace("Marta Ruiz <marta@cliente.example>", address)
    assert verdict(raw).kind is Kind.AUTOREPLY


def test_no_reply_web_form_with_customer_reply_to_is_human() -> None:
    raw = customer("Reply-To: Marta Ruiz <marta@cliente.example>").replace(
        "From: Marta Ruiz <marta@cliente.example>", "From: Formulario web <noreply@tienda.example>"
    )
    assert verdict(raw).kind is Kind.HUMAN


def test_x_auto_response_suppress_is_automatic() -> None:
    assert verdict(customer("X-Auto-Response-Suppress: All")).kind is Kind.AUTOREPLY
    assert verdict(customer("X-Auto-Response-Suppress: None")).kind is Kind.HUMAN


def test_our_ticket_header_coming_back_is_loop() -> None:
    result = verdict(customer("X-Incidencias-Ticket: 42"))
    assert result.kind is Kind.LOOP
    assert result.ticket_number == 42


def test_our_own_mail_read_back_is_loop() -> None:
    raw = customer("X-Incidencias-Ticket: 7", "Auto-Submitted: auto-replied").replace(
        "Marta Ruiz <marta@cliente.example>", f"Tienda <{SHOP.upper()}>"
    )
    result = verdict(raw)
    assert result.kind is Kind.LOOP
    assert result.ticket_number == 7
    assert "own mail" in result.reason


def test_mail_from_our_own_address_is_loop() -> None:
    raw = customer().replace("Marta Ruiz <marta@cliente.example>", SHOP)
    assert verdict(raw).kind is Kind.LOOP


def test_x_loop_naming_our_address_is_loop() -> None:
    assert verdict(customer(f"X-Loop: {SHOP}")).kind is Kind.LOOP
    assert verdict(customer("X-Loop: otra@lista.example")).kind is Kind.HUMAN


def test_without_own_addresses_our_address_is_not_special() -> None:
    raw = customer().replace("Marta Ruiz <marta@cliente.example>", SHOP)
    assert classify(parse(raw)).kind is Kind.HUMAN


@pytest.mark.parametrize(
    "subject",
    [
        "Out of Office: Pedido 1234",
        "Automatic reply: Pedido 1234",
        "Respuesta automática: Pedido 1234",
        "Réponse automatique : Commande 1234",
        "Abwesenheitsnotiz: Bestellung 1234",
        "Fuera de la oficina: Pedido 1234",
        "Absence : Commande 1234",
        "Autoreply: Pedido 1234",
        "Auto-Reply: Pedido 1234",
        "Automatische Antwort: Bestellung",
        "Risposta automatica: Ordine 1234",
        "[Automatyczna odpowiedź] Zamówienie",
        "Thank you for your e-mail",
        "Thank you for your email!",
        "Re: Pedido 1234 (Automatic Response)",
        "=?utf-8?q?Respuesta_autom=C3=A1tica=3A_Pedido?=",
    ],
)
@pytest.mark.parametrize("policy", POLICIES, ids=["compat32", "default"])
def test_autoreply_subject_without_headers_is_autoreply(subject: str, policy: Policy) -> None:
    result = verdict(customer(subject=subject), policy)
    assert result.kind is Kind.AUTOREPLY, result.reason


@pytest.mark.parametrize(
    "subject",
    [
        "Re: Respuesta automática: Pedido 1234",
        "Fwd: Out of Office: Pedido 1234",
        "Absence of invoice in my parcel",
        "Autorización de devolución",
        "Thank you for your email about the refund, but it has not arrived",
        "Undelivered parcel, order 1234",
        "Pedido devuelto: Returned mail from the courier",
    ],
)
@pytest.mark.parametrize("policy", POLICIES, ids=["compat32", "default"])
def test_customer_subjects_that_look_automatic_stay_human(subject: str, policy: Policy) -> None:
    result = verdict(customer(subject=subject), policy)
    assert result.kind is Kind.HUMAN, result.reason


ARF = """\
From: abuse@isp.example
To: {shop}
Subject: Email Feedback Report
MIME-Version: 1.0
Content-Type: multipart/report; report-type=feedback-report; boundary="b"

--b
Content-Type: text/plain

This is an abuse report.
--b
Content-Type: message/feedback-report

Feedback-Type: abuse
User-Agent: Example-FBL/1.0
Version: 1

--b
Content-Type: message/rfc822

From: {shop}
To: marta@isp.example
Message-ID: <ack-9@tienda.example>
X-Incidencias-Ticket: 9
Subject: [#9] Hemos recibido su consulta

Gracias.
--b--
"""


def test_arf_complaint_is_report_naming_our_message() -> None:
    result = verdict(ARF.format(shop=SHOP))
    assert result.kind is Kind.REPORT
    assert result.automatic
    assert (result.original_message_id, result.ticket_number) == ("ack-9@tienda.example", 9)


MDN = """\
From: Marta <marta@cliente.example>
To: {shop}
Subject: Read: [#5] Su pedido
MIME-Version: 1.0
Content-Type: multipart/report; report-type=disposition-notification; boundary="b"

--b
Content-Type: text/plain

Your message was displayed.
--b
Content-Type: message/disposition-notification

Reporting-UA: cliente.example; Thunderbird
Final-Recipient: rfc822; marta@cliente.example
Original-Message-ID: < upd-5@tienda.example >
Disposition: manual-action/MDN-sent-manually; displayed

--b--
"""


def test_read_receipt_is_report_naming_our_message() -> None:
    result = verdict(MDN.format(shop=SHOP))
    assert result.kind is Kind.REPORT
    assert result.original_message_id == "upd-5@tienda.example"


DSN = """\
From: Mail Delivery System <MAILER-DAEMON@mx.tienda.example>
To: {shop}
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
Message-ID: <dsn-1@mx.tienda.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="b"

--b
Content-Type: text/plain

I'm sorry to have to inform you that your message could not be delivered.
--b
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.tienda.example

Final-Recipient: rfc822; marta@cliente.example
Original-Recipient: rfc822;Marta@Cliente.example
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {code} <marta@cliente.example>:
    Recipient address rejected: User unknown in virtual mailbox table

--b
Content-Type: {returned_type}

Return-Path: <{shop}>
From: Tienda <{shop}>
To: marta@cliente.example
Subject: [#12] Hemos recibido su consulta
Message-ID:
 <ack-12@tienda.example>
X-Incidencias-Ticket: 12
Auto-Submitted: auto-replied

--b--
"""


def dsn(
    action: str = "failed",
    status: str = "5.1.1",
    code: str = "550 5.1.1",
    returned_type: str = "message/rfc822",
) -> str:
    return DSN.format(shop=SHOP, action=action, status=status, code=code, returned_type=returned_type)


@pytest.mark.parametrize("returned_type", ["message/rfc822", "text/rfc822-headers"])
@pytest.mark.parametrize("policy", POLICIES, ids=["compat32", "default"])
def test_dsn_for_our_mail_names_ticket_message_and_recipient(returned_type: str, policy: Policy) -> None:
    result = verdict(dsn(returned_type=returned_type), policy)
    assert result.kind is Kind.BOUNCE
    assert result.original_message_id == "ack-12@tienda.example"
    assert result.ticket_number == 12
    assert result.recipient == "marta@cliente.example"
    assert result.permanent is True
    assert result.diagnostic == (
        "550 5.1.1 <marta@cliente.example>: Recipient address rejected: User unknown in virtual mailbox table"
    )


def test_dsn_delay_is_temporary() -> None:
    result = verdict(dsn(action="delayed", status="4.4.1", code="451 4.4.1"))
    assert result.kind is Kind.BOUNCE
    assert result.permanent is False


def test_dsn_reporting_only_success_is_report_not_bounce() -> None:
    result = verdict(dsn(action="delivered", status="2.0.0", code="250 2.0.0"))
    assert result.kind is Kind.REPORT


def test_long_diagnostic_is_one_trimmed_line() -> None:
    result = verdict(dsn(code="550 5.7.1 " + "blocked " * 100))
    assert result.diagnostic is not None
    assert len(result.diagnostic) == 300
    assert "\n" not in result.diagnostic


PLAIN_BOUNCE = """\
From: Mail Delivery System <Mailer-Daemon@mx.cliente.example>
To: {shop}
Subject: Mail delivery failed: returning message to sender
Message-ID: <E1abc@mx.cliente.example>

This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  marta@cliente.example
    host mx.cliente.example [192.0.2.1]
    SMTP error from remote mail server after RCPT TO:<marta@cliente.example>:
    550 5.1.1 User unknown

------ This is a copy of the message, including all the headers. ------

Return-path: <{shop}>
Message-ID: <upd-31@tienda.example>
X-Incidencias-Ticket: 31
From: Tienda <{shop}>
To: marta@cliente.example
Subject: [#31] Novedades sobre su consulta

Hola Marta.
"""


def test_plain_text_bounce_quoting_our_headers_names_ticket_and_message() -> None:
    result = verdict(PLAIN_BOUNCE.format(shop=SHOP))
    assert result.kind is Kind.BOUNCE
    assert (result.original_message_id, result.ticket_number) == ("upd-31@tienda.example", 31)
    assert result.recipient == "marta@cliente.example"
    assert result.permanent is True
    assert result.diagnostic is not None and "550 5.1.1" in result.diagnostic


def test_customer_forwarding_a_bounce_is_human() -> None:
    forwarded = dsn()
    raw = (
        "From: Marta Ruiz <marta@cliente.example>\n"
        f"To: {SHOP}\n"
        "Subject: Fwd: Undelivered Mail Returned to Sender\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="outer"\n\n'
        "--outer\nContent-Type: text/plain\n\nNo me llegan sus correos, mire esto.\n"
        "--outer\nContent-Type: message/rfc822\n\n"
        f"{forwarded}\n"
        "--outer--\n"
    )
    result = verdict(raw)
    assert result.kind is Kind.HUMAN, result.reason


def test_auto_reply_outranks_bulk_headers() -> None:
    result = verdict(customer("Precedence: bulk", "Auto-Submitted: auto-replied"))
    assert result.kind is Kind.AUTOREPLY


# --------------------------------------------------------------------------- never raises

_NAMES = st.sampled_from(
    [
        "From",
        "Return-Path",
        "Subject",
        "Auto-Submitted",
        "Precedence",
        "Content-Type",
        "Reply-To",
        "X-Incidencias-Ticket",
        "List-Id",
        "X-Failed-Recipients",
        "Message-ID",
        "X-Loop",
        "Content-Transfer-Encoding",
        "X-Auto-Response-Suppress",
        "To",
    ]
)
_BROKEN_WORDS = ["=?x-unknown?b?////?=", "=?utf-8?q?=FF=FE?=", "=?utf-8?b?a?=", "=?hex?q?ab?="]
_VALUES = st.one_of(
    st.text(max_size=120),
    st.sampled_from(
        [
            "<>",
            "MAILER-DAEMON@x",
            "noreply@x.example",
            SHOP,
            "auto-replied",
            "bulk",
            "12",
            'multipart/report; report-type=delivery-status; boundary="b"',
            'multipart/report; report-type=feedback-report; boundary="b"',
            'multipart/mixed; boundary="b"',
            "message/rfc822",
            "base64",
            "quoted-printable",
            "text/plain; charset=unicode-1-1-utf-7",
            "text/plain; charset=hex",
            *_BROKEN_WORDS,
        ]
    ),
    st.builds("{}{} {}".format, st.text(max_size=20), st.sampled_from(_BROKEN_WORDS), st.text(max_size=20)),
)
_LINES = st.one_of(
    st.text(max_size=80),
    st.sampled_from(
        [
            "--b",
            "--b--",
            "",
            "Content-Type: message/delivery-status",
            "Content-Type: message/rfc822",
            "Content-Type: text/rfc822-headers",
            "Content-Type: multipart/mixed; boundary=b",
            "Final-Recipient: rfc822; a@b.example",
            "Original-Recipient: ;",
            "Status: 5.1.1",
            "Action: failed",
            "Diagnostic-Code: smtp;",
            "Message-ID: <x@y>",
            "Message-ID:",
            "X-Incidencias-Ticket: 7",
            "Content-Transfer-Encoding: base64",
            " folded",
            "\t",
        ]
    ),
)


@st.composite
def _messages(draw: st.DrawFn) -> bytes:
    headers = draw(st.lists(st.tuples(_NAMES, _VALUES), max_size=12))
    body = draw(st.lists(_LINES, max_size=40))
    text = "".join(f"{name}: {value}\n" for name, value in headers) + "\n" + "\n".join(body)
    return text.encode("utf-8", "replace")


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.one_of(st.binary(max_size=3000), _messages()), policy=st.sampled_from(POLICIES))
def test_arbitrary_input_is_classified_without_error(raw: bytes, policy: Policy) -> None:
    result = classify(email.message_from_bytes(raw, policy=policy), [SHOP])
    assert isinstance(result.kind, Kind)
    assert not result.reason.startswith("classifier error"), result.reason


@pytest.mark.parametrize("word", _BROKEN_WORDS)
@pytest.mark.parametrize("policy", POLICIES, ids=["compat32", "default"])
def test_undecodable_encoded_words_are_tolerated(word: str, policy: Policy) -> None:
    raw = customer(subject=f"Pedido {word}").replace("Marta Ruiz", word)
    result = verdict(raw, policy)
    assert result.kind is Kind.HUMAN
    assert result.reason == "no sign of automatic mail"


def test_huge_headers_and_deep_nesting_are_classified() -> None:
    huge = b"From: a@b.example\nSubject: " + b"x" * 1_000_000 + b"\n" + b"X-Junk: y\n" * 20_000
    result = classify(email.message_from_bytes(huge + b"\nhola\n", policy=email.policy.compat32))
    assert result.kind is Kind.HUMAN
    assert not result.reason.startswith("classifier error")

    nested = b"From: a@b.example\n"
    for depth in range(60):
        nested += f'Content-Type: multipart/mixed; boundary="b{depth}"\n\n--b{depth}\n'.encode()
    nested += b"Content-Type: text/plain\n\nhola\n"
    result = classify(email.message_from_bytes(nested, policy=email.policy.default))
    assert result.kind is Kind.HUMAN
    assert not result.reason.startswith("classifier error")


def test_automatic_is_false_only_for_human() -> None:
    assert [Classification(kind, "r").automatic for kind in Kind] == [k is not Kind.HUMAN for k in Kind]

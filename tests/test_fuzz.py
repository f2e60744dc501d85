"""Abuse the pipeline in process: mutated real-world mail, forged agents, strangers using tags.

Hypothesis mutates corpus messages the ways broken and hostile mail really differs (flipped bytes,
truncation, repeated headers, broken boundaries, wrong charsets, huge lines, encoded CR/LF, 8-bit
headers, nesting, thousands of recipients) and pushes them through Ingestor.ingest on SQLite (or
PostgreSQL, with INCIDENCIAS_TEST_DATABASE=postgresql). The budget is bounded (max_examples,
per-example deadline) so CI stays well under a minute.
"""

from __future__ import annotations

import base64
import itertools
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest
from helpers.corpusdata import corpus_messages
from helpers.dbcheck import migrated_engine
from helpers.figures import record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from daemon.config import Config, Secrets, Settings
from daemon.mail.parsing import bounded_fields
from daemon.runtime.service import assemble
from daemon.storage import db
from daemon.storage.models import Message, OutboxItem, RawMessage, RawOutcome, Ticket
from daemon.tickets.router import Ingestor, Outcome

NOW = datetime(2026, 3, 2, 10, 0)
SHOP = "incidencias@example.com"
AGENTS = ("agent1@example.com", "agent2@example.com")
MARKER = "X-Fuzz-Injected"
MAX_SAMPLE_BYTES = 64_000
FUZZ_SETTINGS = settings(max_examples=150, deadline=timedelta(seconds=10),
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
                         database=None)

Draw = Callable[[st.SearchStrategy[Any]], Any]
Shop = tuple[Ingestor, sessionmaker[Session]]


def _samples() -> list[bytes]:
    found = [m.file.read_bytes() for m in corpus_messages()]
    return [raw for raw in found if len(raw) <= MAX_SAMPLE_BYTES]


SAMPLES = _samples()


def _make_shop(directory: Path) -> Shop:
    engine = migrated_engine(directory, "fuzz.db")
    sessions = db.session_factory(engine)
    config = Config.model_validate({
        "shop": {"name": "Tienda", "address": SHOP, "languages": ["es", "fr", "en"],
                 "default_language": "es"},
        "imap": {"host": "127.0.0.1", "security": "none", "username": "u"},
        "smtp": {"host": "127.0.0.1", "security": "none"},
        "agents": {"addresses": list(AGENTS)},
    })
    settings_ = Settings(config=config, path=Path("config.toml"),
                         secrets=Secrets(imap_password=None, smtp_password=None,
                                         agent_secret=SecretStr("fuzz-secret")))
    return assemble(settings_, engine, sessions, lambda: NOW).ingestor, sessions


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    ingestor, sessions = _make_shop(tmp_path_factory.mktemp("fuzz"))
    yield ingestor, sessions
    sessions.kw["bind"].dispose()


# --- mutations: each takes hypothesis' draw and the bytes, returns new bytes -----------------------

def _split(raw: bytes) -> tuple[bytes, bytes, bytes]:
    """Header block, the blank line that ends it, body (LF or CRLF mail alike)."""
    found = re.search(rb"\r?\n\r?\n", raw)
    if found is None:
        return raw, b"", b""
    return raw[:found.start()], raw[found.start():found.end()], raw[found.end():]


def flip_bytes(draw: Draw, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(draw(st.integers(1, 20))):
        if data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


def truncate(draw: Draw, raw: bytes) -> bytes:
    return raw[:draw(st.integers(0, len(raw)))]


def duplicate_header(draw: Draw, raw: bytes) -> bytes:
    head, blank, body = _split(raw)
    lines = head.split(b"\n")
    index = draw(st.integers(0, len(lines) - 1))
    copies = [lines[index]] * draw(st.integers(1, 300))
    return b"\n".join([*lines[:index], *copies, *lines[index:]]) + blank + body


def many_recipients(draw: Draw, raw: bytes) -> bytes:
    count = draw(st.integers(100, 5000))
    header = b"Cc: " + b",\r\n ".join(b"r%d@example.org" % i for i in range(count)) + b"\r\n"
    return header + raw


def break_boundary(draw: Draw, raw: bytes) -> bytes:
    found = re.search(rb'boundary="?([^";\r\n]+)"?', raw, re.IGNORECASE)
    if found is None:
        return b'Content-Type: multipart/mixed; boundary="nowhere"\r\n' + raw
    boundary = found.group(1)
    how = draw(st.sampled_from(["drop-closing", "rename-declared", "drop-param", "drop-all-markers"]))
    if how == "drop-closing":
        return raw.replace(b"--" + boundary + b"--", b"")
    if how == "rename-declared":
        return raw[:found.start(1)] + b"x" + raw[found.start(1):]
    if how == "drop-param":
        return raw[:found.start()] + raw[found.end():]
    return raw.replace(b"--" + boundary, b"")


CHARSETS = [b"utf-8", b"x-unknown-charset", b"utf-7", b"utf-16", b"iso-2022-jp", b"ebcdic-cp-us",
            b"", b'""', b"windows-1252", b"gb18030", b"unicode-1-1-utf-7", b"latin-1\x00"]


def swap_charset(draw: Draw, raw: bytes) -> bytes:
    charset = draw(st.sampled_from(CHARSETS))
    swapped, count = re.subn(rb'charset="?[\w.:-]*"?', b"charset=" + charset, raw, flags=re.IGNORECASE)
    if count:
        return swapped
    return b"Content-Type: text/plain; charset=" + charset + b"\r\n" + raw


def huge_line(draw: Draw, raw: bytes) -> bytes:
    size = draw(st.sampled_from([2_000, 100_000, 1_000_000]))
    chunk = draw(st.sampled_from([b"A", b"\xc3\xa9", b"=?utf-8?q?x?= ", b"> ", b"\xff"]))
    line = (chunk * (size // len(chunk) + 1))[:size]
    if draw(st.booleans()):
        return b"Subject: " + line + b"\r\n" + raw
    head, blank, body = _split(raw)
    return head + (blank or b"\r\n\r\n") + line + b"\r\n" + body


# Ways of smuggling a new header line into anything we might copy into an outgoing header.
INJECTIONS = [
    b"Subject: =?utf-8?q?Pedido=0D=0A" + MARKER.encode() + b":_yes?=",
    b"Subject: Pedido\r" + MARKER.encode() + b": yes",
    b"From: =?utf-8?b?" + base64.b64encode(b"Eve\r\n" + MARKER.encode() + b": yes")
    + b"?= <eve@example.org>",
    b"From: \"Eve\r\n" + MARKER.encode() + b": yes\" <eve@example.org>",
    b"Reply-To: =?utf-8?q?a=0A" + MARKER.encode() + b":_yes?= <eve@example.org>",
    b"In-Reply-To: <a\r" + MARKER.encode() + b":b@example.org>",
    b"Thread-Index: =?utf-8?q?AQHZ=0D=0A" + MARKER.encode() + b":_yes?=",
    b"Content-Language: es\r" + MARKER.encode() + b": yes",
]


def inject_header(draw: Draw, raw: bytes) -> bytes:
    injected = draw(st.sampled_from(INJECTIONS))
    name = injected.split(b":", 1)[0]
    head, blank, body = _split(raw)
    kept = re.sub(rb"(?im)^" + name + rb":.*(\r?\n[ \t].*)*(\r?\n|$)", b"", head)
    return injected + b"\r\n" + kept + (blank or b"\r\n\r\n") + body


def _invoice() -> bytes:
    message = EmailMessage()
    message["From"] = "Eve <eve@example.org>"
    message["To"] = SHOP
    message["Subject"] = "Factura"
    message.set_content("Adjunto la factura del pedido.")
    message.add_attachment(b"%PDF-1.4 fuzz", maintype="application", subtype="pdf", filename="f.pdf")
    return message.as_bytes()


# Built once: the email generator draws MIME boundaries from `random`, which strategies must not use.
INVOICE = _invoice()


def hostile_attachment(draw: Draw, raw: bytes) -> bytes:
    name = draw(st.sampled_from([
        "../../../../etc/passwd", "..\\..\\boot.ini", "a\r\n" + MARKER + ": yes.pdf",
        "=?utf-8?q?a=0D=0A" + MARKER + ":_x.pdf?=", "\x00\x1b[31mred.txt", "/dev/zero", "",
        "x" * 5000 + ".pdf"]))
    data = INVOICE.replace(b'filename="f.pdf"', b'filename="' + name.encode() + b'"')
    return data if draw(st.booleans()) else data + raw


def eight_bit_headers(draw: Draw, raw: bytes) -> bytes:
    noise = draw(st.binary(min_size=1, max_size=60).filter(lambda b: b"\n" not in b and b"\r" not in b))
    field = draw(st.sampled_from([b"Subject", b"From", b"To", b"X-Mailer"]))
    if field == b"From":
        return b"From: " + noise + b" <eight@example.org>\r\n" + raw
    return field + b": " + noise + b"\r\n" + raw


def nest_rfc822(draw: Draw, raw: bytes) -> bytes:
    for level in range(draw(st.integers(1, 60))):
        raw = (b"From: wrapper%d@example.org\r\nSubject: Fwd\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n--b%d\r\n"
               b"Content-Type: message/rfc822\r\n\r\n" % (level, level, level)
               + raw + b"\r\n--b%d--\r\n" % level)
    return raw


def empty_body(draw: Draw, raw: bytes) -> bytes:
    head, blank, _ = _split(raw)
    return head + (blank if draw(st.booleans()) else b"")


MUTATIONS = [flip_bytes, truncate, duplicate_header, many_recipients, break_boundary, swap_charset,
             huge_line, inject_header, hostile_attachment, eight_bit_headers, nest_rfc822, empty_body]


@st.composite
def mutated_mail(draw: Draw) -> bytes:
    raw: bytes = draw(st.sampled_from(SAMPLES))
    if draw(st.booleans()):
        # A fresh Message-ID mostly, so mutants are processed rather than found to be duplicates.
        fresh = b"Message-ID: <fuzz-%d@example.org>" % draw(st.integers(0, 2**40))
        raw, count = re.subn(rb"(?im)^message-id:[^\r\n]*", fresh, raw, count=1)
        raw = raw if count else fresh + b"\r\n" + raw
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3)):
        raw = mutation(draw, raw)
    return raw


# --- invariants -----------------------------------------------------------------------------------

def _header_lines_are_sound(raw: bytes) -> None:
    """Every line of every header block is `Name: value` or a fold; nothing carries our marker."""
    parsed = BytesParser(policy=policy.default).parsebytes(raw)
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        assert re.match(rb"^([!-9;-~]+:|[ \t])", line), f"malformed outgoing header line {line[:80]!r}"
    for part in parsed.walk():
        for name, value in part.items():
            assert name.lower() != MARKER.lower(), "a header was injected from the input"
            assert "\r" not in str(value) and "\n" not in str(value), f"CR/LF in {name}: {value!r}"


def _newest_outbox_id(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.max(OutboxItem.id))) or 0


def _check_kept(sessions: sessionmaker[Session], raw: bytes, outcome: Outcome, after_id: int) -> int:
    """The raw bytes are stored with a definite outcome; returns how many outgoing mails it caused."""
    with sessions() as session:
        row = session.get(RawMessage, outcome.raw_id)
        lost = row is None or row.raw != raw
        record("messages lost", int(lost))
        assert not lost, "raw bytes not kept"
        assert row is not None
        assert row.outcome in (RawOutcome.TICKET, RawOutcome.DUPLICATE, RawOutcome.QUARANTINED)
        if row.outcome == RawOutcome.QUARANTINED:
            assert row.error
        else:
            assert row.ticket_id is not None and session.get(Ticket, row.ticket_id) is not None
        outgoing = list(session.scalars(select(OutboxItem.raw).where(OutboxItem.id > after_id)))
    for mail in outgoing:
        _header_lines_are_sound(mail)
    return len(outgoing)


@FUZZ_SETTINGS
@given(raw=mutated_mail())
def test_mutated_mail_never_crashes_ingest_is_kept_whole_and_never_injects_headers(
        shop: Shop, raw: bytes) -> None:
    ingestor, sessions = shop
    before = _newest_outbox_id(sessions)
    record("messages tried", 1)
    record("fuzz: mutated messages ingested", 1)
    try:
        outcome = ingestor.ingest(raw)
    except Exception:
        record("crashes of the daemon", 1)
        raise
    record("crashes of the daemon", 0)
    record(f"fuzz: outcome {outcome.outcome}", 1)
    record("fuzz: outgoing mails checked for header injection",
           _check_kept(sessions, raw, outcome, before))


def test_a_crlf_smuggled_into_the_subject_never_reaches_the_acknowledgement(shop: Shop) -> None:
    """The fuzz property above, pinned to one case that must always be exercised."""
    ingestor, sessions = shop
    # A sender of its own: the fuzz shares this database, and a follow-up gets no acknowledgement.
    raw = (b"From: Eve <pinned-injection@example.org>\r\nTo: " + SHOP.encode() + b"\r\n"
           b"Subject: =?utf-8?q?Pedido=0D=0A" + MARKER.encode() + b":_yes?=\r\n"
           b"Message-ID: <pinned-injection@example.org>\r\n\r\nHola, mi pedido no ha llegado.\r\n")
    before = _newest_outbox_id(sessions)
    outcome = ingestor.ingest(raw)
    assert outcome.outcome == RawOutcome.TICKET and outcome.new_ticket
    assert _check_kept(sessions, raw, outcome, before) >= 1


def test_an_endless_header_field_is_cut_for_parsing_but_stored_whole(shop: Shop) -> None:
    """Pinned: the stdlib decodes RFC 2047 words in quadratic time, so fields are bounded first."""
    ingestor, sessions = shop
    endless = b"Subject: " + b"=?utf-8?q?x?= " * 80_000
    raw = (b"From: Eve <pinned-endless@example.org>\r\nTo: " + SHOP.encode() + b"\r\n" + endless +
           b"\r\nMessage-ID: <endless@example.org>\r\n\r\nHola, el pedido no llega.\r\n")
    assert len(bounded_fields(raw)) < 20_000 and bounded_fields(raw).endswith(b"no llega.\r\n")
    outcome = ingestor.ingest(raw)
    with sessions() as session:
        row = session.get_one(RawMessage, outcome.raw_id)
    assert outcome.outcome == RawOutcome.TICKET and row.raw == raw
    assert row.message_id == "endless@example.org", "fields after the long one are still read"


def test_an_auto_reply_naming_a_ticket_number_is_filed_there_only_from_someone_in_it(shop: Shop) -> None:
    """Pinned: ticket numbers are guessable, so a stranger's X-Incidencias-Ticket links nothing."""
    ingestor, _ = shop
    opened = ingestor.ingest(_mail("Owner <oof-owner@example.net>", "Devolución", "Quiero devolverlo.",
                                   message_id="oof-ticket@example.net"))
    header = {"Auto-Submitted": "auto-replied", "X-Incidencias-Ticket": str(opened.ticket)}
    stranger = ingestor.ingest(_mail("Eve <eve@example.org>", "Fuera de la oficina", "Vuelvo el lunes.",
                                     extra=header, message_id="oof-stranger@example.org"))
    owner = ingestor.ingest(_mail("Owner <oof-owner@example.net>", "Fuera de la oficina",
                                  "Vuelvo el lunes.", extra=header, message_id="oof-owner@example.net"))
    assert stranger.outcome == RawOutcome.QUARANTINED and stranger.ticket is None
    assert owner.outcome == RawOutcome.TICKET and owner.ticket == opened.ticket


# --- forged agents and strangers reaching other people's tickets ----------------------------------

def _mail(sender: str, subject: str, body: str, *, refs: Sequence[str] = (),
          extra: dict[str, str] | None = None, message_id: str) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = SHOP
    message["Subject"] = subject
    message["Message-ID"] = f"<{message_id}>"
    if refs:
        message["In-Reply-To"] = refs[-1]
        message["References"] = " ".join(refs)
    for name, value in (extra or {}).items():
        message[name] = value
    message.set_content(body)
    return message.as_bytes()


TICKET_FIELDS = ("status", "customer_email", "assigned_to", "tags", "status_line", "wait_until",
                 "language", "closed_at", "discount_code", "satisfaction", "last_agent_reply_at")


def _snapshot(session: Session, ticket: int) -> tuple[object, ...]:
    row = session.get_one(Ticket, ticket)
    return tuple(getattr(row, name) for name in TICKET_FIELDS)


class Victims:
    """Two customers' tickets and the genuine agent tokens an attacker would like to reuse."""

    def __init__(self, shop: Shop) -> None:
        ingestor, sessions = shop
        self.maria = ingestor.ingest(_mail("María <maria@example.net>", "Paquete roto", "Llegó roto.",
                                           message_id="victim-a@example.net")).ticket
        self.pablo = ingestor.ingest(_mail("Pablo <pablo@example.net>", "Talla mal", "Pedí una L.",
                                           message_id="victim-b@example.net")).ticket
        with sessions() as session:
            tokens = session.scalars(select(OutboxItem.message_id).where(
                OutboxItem.kind == "notification", OutboxItem.recipients == AGENTS[0]))
            by_ticket = {int(t.split(".")[1]): t for t in tokens}
        self.token = {self.maria: by_ticket[self.maria], self.pablo: by_ticket[self.pablo]}


@pytest.fixture(scope="module")
def victims(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Shop, Victims]]:
    shop = _make_shop(tmp_path_factory.mktemp("abuse"))
    yield shop, Victims(shop)
    shop[1].kw["bind"].dispose()


def _forged_token(draw: Draw, genuine: str, other_ticket: int) -> str:
    """A notification id that must not verify for the sender it is sent with."""
    prefix, ticket, notify, nonce, rest = genuine.split(".", 4)
    mac, domain = rest.split("@")
    how = draw(st.sampled_from(["retarget", "mac", "nonce", "random"]))
    if how == "retarget":
        ticket = str(other_ticket)
    elif how == "mac":
        mac = ("0" if mac[0] != "0" else "1") + mac[1:]
    elif how == "nonce":
        nonce = ("0" if nonce[0] != "0" else "1") + nonce[1:]
    else:
        nonce, mac = f"{draw(st.integers(0, 2**64 - 1)):016x}", f"{draw(st.integers(0, 2**128 - 1)):032x}"
    return f"{prefix}.{ticket}.{notify}.{nonce}.{mac}@{domain}"


# Not drawn: while shrinking, hypothesis would reuse ids and turn attacks into duplicates.
ATTACK_IDS = itertools.count()
COMMANDS = ["#close", "#cerrar 50%", "#note nada", "#assign eve", "#tag robado", "#lang fr",
            "#waiting", "#status Reembolsado", "#wait 2d", "#reopen", "#promise 1d devolver"]


@settings(max_examples=120, deadline=timedelta(seconds=10), database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_forged_agents_and_strangers_never_run_commands_or_reach_other_tickets(
        victims: tuple[Shop, Victims], data: st.DataObject) -> None:
    (ingestor, sessions), v = victims
    draw = data.draw
    target = draw(st.sampled_from([v.maria, v.pablo]), label="target")
    other = v.pablo if target == v.maria else v.maria
    sender = draw(st.sampled_from(["Eve <eve@example.org>", "agent1@example.com",
                                   "Agente <AGENT2@example.com>", "pablo@example.net",
                                   "maria@example.net"]), label="sender")
    address = sender.split("<")[-1].rstrip(">").lower()
    if address == AGENTS[0]:
        refs = [f"<{_forged_token(draw, v.token[target], other)}>"]
    else:
        # Anyone but agent1 holding agent1's genuine token is forging it.
        refs = draw(st.sampled_from([[f"<{v.token[target]}>"], [],
                                     [f"<{_forged_token(draw, v.token[target], other)}>"]]))
    subject = draw(st.sampled_from([f"Re: [#{target}] Paquete roto", f"[#{target}]", "Re: Paquete roto",
                                    f"RE: [#{target}] Talla mal"]), label="subject")
    extra = draw(st.sampled_from([{}, {"X-Incidencias-Ticket": str(target)},
                                  {"Authentication-Results": "mx.example.com; dkim=pass "
                                   "header.d=example.com; dmarc=pass header.from=example.com"}]))
    body = f"{draw(st.sampled_from(COMMANDS))}\n\nHecho."
    mid = f"attack-{next(ATTACK_IDS)}@example.org"
    with sessions() as session:
        before = {t: _snapshot(session, t) for t in (v.maria, v.pablo)}
    after_id = _newest_outbox_id(sessions)

    ingestor.ingest(_mail(sender, subject, body, refs=refs, extra=extra, message_id=mid))

    with sessions() as session:
        after = {t: _snapshot(session, t) for t in (v.maria, v.pablo)}
        leaked = list(session.scalars(select(OutboxItem).where(
            OutboxItem.id > after_id, OutboxItem.ticket_id.in_([v.maria, v.pablo]),
            OutboxItem.recipients.not_in(AGENTS))))
        joined = session.scalar(select(Message.ticket_id).where(Message.message_id == mid))
    owner = {v.maria: "maria@example.net", v.pablo: "pablo@example.net"}
    accepted = before != after or bool(leaked)
    crossed = joined in owner and owner[joined] != address and address not in AGENTS
    record("forged commands accepted", int(accepted))
    record("cross-ticket attempts accepted", int(crossed))
    record("forged-agent and cross-ticket attempts", 1)
    assert not accepted, f"forged mail changed a ticket or reached a customer: {before} → {after}"
    assert not crossed, f"{address} reached ticket {joined} of {owner.get(joined or 0)}"

"""Tell a customer's mail from automatic mail before anything answers it.

Auto-replies, bounces, list mail, abuse reports, read receipts and our own mail coming back must never
be acknowledged and must never reopen a ticket (RFC 3834, and the loops other helpdesks are known for).
Everything here is pure: it reads a parsed `email.message.Message` and returns a `Classification`.

Callers pass the message as mail-parser gives it (`.message`, a compat32 `Message`); messages parsed
with `email.policy.default` give the same results, because headers are read raw and decoded here.
Nothing in this module raises: malformed input at worst yields HUMAN with the error as the reason.
Reading the message is mime.py's; reading delivery notices is dsn.py's; the order of the checks is here.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import asdict, dataclass
from email.message import Message
from enum import StrEnum

from daemon.mail import dsn
from daemon.mail.mime import (
    LOOP_HEADER,
    NOREPLY_LOCAL,
    NULL_PATH,
    POSTMASTER_LOCAL,
    Headers,
    Signals,
    address_of,
    addresses_in,
    content_type,
    decoded,
    display_name,
    is_machine_address,
    raw_param,
    ticket_number_of,
    walk_parts,
)

__all__ = ["Classification", "Kind", "classify"]


class Kind(StrEnum):
    """What sort of sender produced the message."""

    HUMAN = "human"
    AUTOREPLY = "autoreply"
    BOUNCE = "bounce"
    BULK = "bulk"
    LOOP = "loop"
    REPORT = "report"  # ARF abuse complaints, read receipts, successful-delivery notices


@dataclass(frozen=True)
class Classification:
    """The verdict on one message, with what the bounce handling needs to find the ticket."""

    kind: Kind
    reason: str
    original_message_id: str | None = None
    ticket_number: int | None = None
    permanent: bool | None = None
    diagnostic: str | None = None
    recipient: str | None = None

    @property
    def automatic(self) -> bool:
        """True for everything a machine sent: never acknowledge it, never reopen a ticket for it."""
        return self.kind is not Kind.HUMAN


def classify(message: Message, own_addresses: Collection[str] = ()) -> Classification:
    """Classify `message`; `own_addresses` are the shop's addresses, so our own mail is recognised."""
    try:
        own = frozenset(a.strip().lower() for a in own_addresses if isinstance(a, str) and a.strip())
        return _classify(message, own)
    except Exception as exc:  # the contract is "never raises"; an unforeseen defect must not lose mail
        return Classification(Kind.HUMAN, f"classifier error ({type(exc).__name__}); treated as human")


# Out-of-office and auto-reply subjects in the shop's languages and its neighbours'. They are
# anchored at the start (after an optional "[") so a customer's "Re:"/"Fwd:" of one stays human.
_AUTOREPLY_SUBJECT = re.compile(
    r"""^\s*\[?\s*(?:
        auto(?:matic|matische|matisch|matico|mático)?[\s_-]?
            (?:reply|replied|response|respons|answer|antwort|antwoord|respuesta)\b
      | out\s+of\s+(?:the\s+)?office\b
      | respuesta\s+autom[aá]tica\b
      | fuera\s+de\s+(?:la\s+)?oficina\b
      | r[ée]ponse\s+automatique\b
      | absence\s*(?:[:(\-]|$)
      | abwesenheitsnotiz\b
      | risposta\s+automatica\b
      | resposta\s+autom[aàá]tica\b
      | automatyczna\s+odpowied[zź]\b
      | thank\s+you\s+for\s+your\s+(?:e-?mail|message)\s*[.!]?\s*$
    )""",
    re.IGNORECASE | re.VERBOSE,
)
_AUTOREPLY_SUBJECT_SUFFIX = re.compile(r"\(\s*auto(?:matic)?[\s-]?(?:response|reply)\s*\)\s*$", re.I)


def _classify(message: Message, own: frozenset[str]) -> Classification:
    headers = Headers.of(message)
    from_value = headers.first("from")
    signals = Signals(
        sender=address_of(from_value),
        sender_name=display_name(from_value),
        subject=decoded(headers.first("subject") or ""),
        null_return_path=any(NULL_PATH.match(v) for v in headers.all("return-path")[:1]),
        null_from=bool(from_value is not None and NULL_PATH.match(from_value)),
        reply_to=addresses_in(headers.all("reply-to")),
    )
    loop_value = headers.first(LOOP_HEADER)
    from_own = bool(signals.sender) and signals.sender in own
    if from_own and loop_value is not None:
        return Classification(
            Kind.LOOP,
            f"our own mail read back (From {signals.sender}, X-Incidencias-Ticket)",
            ticket_number=ticket_number_of(loop_value),
        )

    parts = list(walk_parts(message))
    part_types = [content_type(p) for p in parts]
    report_type = raw_param(headers, "report-type") if part_types[0] == "multipart/report" else ""

    report = dsn.report(parts, part_types, report_type)
    if report is not None:
        return Classification(Kind.REPORT, report.reason,
                              original_message_id=report.original_message_id,
                              ticket_number=report.ticket_number)

    bounce_reason = dsn.failure_reason(headers, signals, parts, part_types, report_type)
    if bounce_reason is not None:
        failure = dsn.read_failure(headers, signals, parts, part_types, own)
        return Classification(Kind.BOUNCE, bounce_reason, **asdict(failure))

    loop = _loop(headers, signals, loop_value, from_own, own)
    if loop is not None:
        return loop

    strong = _autoreply_reason(headers, signals)
    if strong is not None:
        return Classification(Kind.AUTOREPLY, strong)

    bulk = _bulk_reason(headers)
    if bulk is not None:
        return Classification(Kind.BULK, bulk)

    weak = _weak_automatic_reason(headers, signals)
    if weak is not None:
        return Classification(Kind.AUTOREPLY, weak)

    return Classification(Kind.HUMAN, "no sign of automatic mail")


def _loop(
    headers: Headers, signals: Signals, loop_value: str | None, from_own: bool, own: frozenset[str]
) -> Classification | None:
    if loop_value is not None:
        return Classification(
            Kind.LOOP,
            "our X-Incidencias-Ticket header came back in a top-level message",
            ticket_number=ticket_number_of(loop_value),
        )
    if from_own:
        return Classification(Kind.LOOP, f"sent from our own address {signals.sender}")
    looped = addresses_in(headers.all("x-loop")) & own
    if looped:
        return Classification(Kind.LOOP, f"X-Loop names our address {min(looped)}")
    return None


def _autoreply_reason(headers: Headers, signals: Signals) -> str | None:
    """Signs that a program answered (or generated) this message on someone's behalf."""
    for value in headers.all("auto-submitted"):
        keyword = re.split(r"[\s;(]", value.strip(), maxsplit=1)[0].lower()
        if keyword and keyword != "no":
            return f"Auto-Submitted: {value[:60]}"
    for name in ("x-autoreply", "x-autorespond"):
        for value in headers.all(name):
            if value.strip().lower() not in ("no", "false", "0"):
                return f"{name.title()}: {value[:60]}"
    for value in headers.all("precedence"):
        if value.strip().lower() in ("auto_reply", "auto-reply"):
            return f"Precedence: {value[:30]}"
    if _AUTOREPLY_SUBJECT.search(signals.subject) or _AUTOREPLY_SUBJECT_SUFFIX.search(signals.subject):
        return f"auto-reply subject {signals.subject[:80]!r}"
    return None


def _bulk_reason(headers: Headers) -> str | None:
    for name in ("list-id", "list-unsubscribe"):
        if headers.has(name):
            return f"{name.title()} header (mailing list or newsletter)"
    for value in headers.all("precedence"):
        if value.strip().lower() in ("bulk", "junk", "list"):
            return f"Precedence: {value.strip().lower()}"
    return None


def _weak_automatic_reason(headers: Headers, signals: Signals) -> str | None:
    """Signs of a machine sender that do not say what kind of message it is."""
    for value in headers.all("x-auto-response-suppress"):
        if value.strip().lower() not in ("", "none"):
            return f"X-Auto-Response-Suppress: {value[:60]}"
    if signals.null_return_path:
        return "empty Return-Path <>"
    if signals.null_from:
        return "empty From <>"
    local = signals.sender.partition("@")[0]
    if POSTMASTER_LOCAL.match(local):
        return f"sender {signals.sender}"
    if NOREPLY_LOCAL.match(local) and not _relays_a_person(signals):
        return f"no-reply sender {signals.sender}"
    return None


def _relays_a_person(signals: Signals) -> bool:
    """A no-reply From with a personal Reply-To is a web form relaying a customer: answer them."""
    return any(addr != signals.sender and not is_machine_address(addr) for addr in signals.reply_to)

"""The corpus run of issue 13: how many subjects and names read differently now than through
mail-parser's own decoding, and that every one that changed now reads as the stdlib's
RFC 2047 reader (policy.default) reads it."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path

import mailparser
import pytest
from helpers.corpusdata import LOCAL, SHARED, _read_index
from helpers.figures import record

from daemon.mail.parsing import ParseError, bounded_fields, clean_header_text, parse

FIELDS = ("To", "Cc", "Reply-To")
_WORD = re.compile(r"=\?[^?\s]+\?[qQbB]\?")
_RANDOM_NAME = re.compile(r"[a-z]{10}\.(txt|rtf)")


def _before(raw: bytes) -> dict[str, str]:
    """What the parser read before issue 13: mail-parser's subject, sender and attachment names,
    the other names through email.header's decode_header/make_header."""
    mail = mailparser.parse_from_bytes(bounded_fields(raw))
    found = {"subject": clean_header_text(str(mail.subject or ""))}
    if mail.from_ and "@" in str(mail.from_[0][1]):
        found["from"] = clean_header_text(_old_decoded(str(mail.from_[0][0])))
    for field in FIELDS:
        values = [str(v) for v in mail.message.get_all(field) or []]
        for n, (name, email) in enumerate(getaddresses(values)):
            if "@" in email:
                found[f"{field}{n}"] = clean_header_text(_old_decoded(name))
    for n, item in enumerate(mail.attachments):
        found[f"file{n}"] = clean_header_text(str(item.get("filename") or "attachment"))
    return found


def _old_decoded(text: str) -> str:
    if "=?" not in text:
        return text
    try:
        return str(make_header(decode_header(text)))
    except (LookupError, UnicodeError, ValueError):
        return text


def _after(raw: bytes) -> dict[str, str]:
    parsed, _ = parse(raw)
    found = {"subject": parsed.subject, "from": parsed.sender.name}
    for field, addresses in (("To", parsed.to), ("Cc", parsed.cc), ("Reply-To", parsed.reply_to)):
        for n, address in enumerate(addresses):
            found[f"{field}{n}"] = address.name
    for n, attachment in enumerate(parsed.attachments):
        found[f"file{n}"] = attachment.filename
    return found


def _reference_subject(raw: bytes) -> str | None:
    """The stdlib's own reading, where it has one: 8-bit bytes come back as surrogates, and a
    word whose bytes its charset refuses is left encoded (ours reads it with a U+FFFD)."""
    message = message_from_bytes(bounded_fields(raw), policy=policy.default)
    assert isinstance(message, EmailMessage)
    subject = str(message.get("Subject", ""))
    if any("\ud800" <= ch <= "\udfff" or ch == "\ufffd" for ch in subject) or _WORD.search(subject):
        return None
    return clean_header_text(subject)


def _invented(before: str, after: str) -> bool:
    """mail-parser names an unnamed attachment with ten random letters, anew at each parse."""
    return all(_RANDOM_NAME.fullmatch(name) for name in (before, after))


def _files(root: Path) -> list[Path]:
    return [m.file for m in _read_index(root) if m.file.is_file()]


@pytest.mark.parametrize("root", [SHARED, LOCAL], ids=["shared corpus", "tests corpus"])
def test_corpus_subjects_and_names_changed_only_where_the_stdlib_reads_them_so(root: Path) -> None:
    files = _files(root)
    if not files:
        pytest.skip(f"no corpus at {root}")
    changed: list[str] = []
    texts = 0
    disagreeing: list[str] = []
    for file in files:
        raw = file.read_bytes()
        try:
            after = _after(raw)
        except ParseError:
            continue
        before = _before(raw)
        texts += len(after)
        changed += [f"{file.name} {key}: {before.get(key)!r} → {value!r}"
                    for key, value in after.items()
                    if key in before and before[key] != value and not _invented(before[key], value)]
        reference = _reference_subject(raw)
        if reference is not None and reference != after["subject"]:
            disagreeing.append(f"{file.name}: {after['subject']!r} ≠ stdlib {reference!r}")
    label = "shared" if root == SHARED else "tests"
    record(f"{label} corpus: subjects/names/attachment names read", texts)
    record(f"{label} corpus: subjects/names/attachment names changed by issue 13", len(changed))
    print(f"\n{label} corpus: {len(files)} files, {texts} header texts, {len(changed)} changed")
    print("\n".join(changed))
    assert not disagreeing, "\n".join(disagreeing)

"""Discount codes for closed tickets, from the provider named in config.

A provider hands out one code per close inside the caller's transaction, so the ticket, its code and
the closing email are committed together or not at all. `generated` mints codes here, and the shop
imports them later from `export_csv`; `pool` hands out codes the shop created beforehand. Codes
created in the shop's platform by its API wait for the shop's answer instead: see `coupons`.

Dates are naive UTC like every column; `valid_until` is stored as midnight of the last valid day.
"""

from __future__ import annotations

import csv
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Protocol, TextIO

from sqlalchemy import ColumnElement, func, or_, select, update
from sqlalchemy.orm import Session

from daemon.storage.models import DiscountCode, utcnow

POOL = "pool"
GENERATED = "generated"

# Read aloud or copied by hand without confusion: no 0/O, 1/I/L.
ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"
MIN_LENGTH = 8
_MAX_DRAWS = 20
_CODE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}")
_FIELD_SPLIT = re.compile(r"\s*[,;\t]\s*")
_CHUNK = 500


@dataclass(frozen=True)
class Discount:
    """What the customer is shown in the closing email."""

    code: str
    percent: int
    valid_until: date


@dataclass(frozen=True)
class IssueResult:
    discount: Discount | None  # None: no code could be issued; the close goes on without one
    remaining: int | None  # codes left after this claim, for providers that count them
    problem: str | None  # why no code was issued, for the agents


class DiscountProvider(Protocol):
    name: str

    def issue(self, session: Session, ticket_id: int, percent: int, now: datetime) -> IssueResult:
        """Give `ticket_id` a code worth `percent`, recorded in the caller's transaction."""
        ...


class PoolFileError(ValueError):
    """A line of the pool file that is not a code, so the shop can fix it (named by line number)."""


@dataclass(frozen=True)
class PoolEntry:
    code: str
    percent: int | None
    valid_until: date | None


def generate_code(prefix: str, length: int) -> str:
    """A fresh code: about 5 bits of `secrets` randomness per character, so 10 give ~50 bits."""
    body = "".join(secrets.choice(ALPHABET) for _ in range(length))
    return f"{prefix}-{body}" if prefix else body


class GeneratedCodes:
    """Mints a unique, unguessable code per close; the shop learns them from `export_csv`."""

    name: str = GENERATED

    def __init__(self, prefix: str = "GRACIAS", valid_for: timedelta = timedelta(days=90),
                 length: int = 10, source: str = GENERATED) -> None:
        if length < MIN_LENGTH:
            raise ValueError(f"a code needs at least {MIN_LENGTH} random characters to be unguessable")
        if len(prefix) + 1 + length > 64:
            raise ValueError("prefix too long: codes are at most 64 characters")
        self.prefix = prefix
        self.valid_for = valid_for
        self.length = length
        self.source = source  # recorded with each code: "platform" when the shop gets them by API

    def issue(self, session: Session, ticket_id: int, percent: int, now: datetime) -> IssueResult:
        _check_percent(percent)
        code = self._unused_code(session)
        valid_until = (now + self.valid_for).date()
        session.add(DiscountCode(code=code, source=self.source, percent=percent,
                                 valid_until=_midnight(valid_until), ticket_id=ticket_id,
                                 claimed_at=now, created_at=now))
        session.flush()
        return IssueResult(Discount(code, percent, valid_until), None, None)

    def _unused_code(self, session: Session) -> str:
        """Checked before inserting, so a clash never aborts the caller's whole transaction."""
        for _ in range(_MAX_DRAWS):
            code = generate_code(self.prefix, self.length)
            if session.scalar(select(DiscountCode.id).where(DiscountCode.code == code)) is None:
                return code
        raise RuntimeError(f"{_MAX_DRAWS} drawn discount codes were all taken: is the random source broken?")


class CodePool:
    """Hands out codes the shop created beforehand, each to one ticket only, whoever races for it.

    A candidate is picked with `FOR UPDATE SKIP LOCKED` (PostgreSQL, MySQL: concurrent closes take
    different rows without waiting; SQLite ignores it) and claimed by an UPDATE that only matches
    while the code is still free. SQLite serialises writers, so a close that lost the race sees the
    claim, updates no row and moves on to the next candidate.

    Codes worth exactly the asked percent go first, then codes of unknown value (which take the
    asked percent); a code of another fixed value is never given instead.
    """

    name: str = POOL

    def __init__(self, valid_for: timedelta = timedelta(days=90)) -> None:
        self.valid_for = valid_for

    def issue(self, session: Session, ticket_id: int, percent: int, now: datetime) -> IssueResult:
        _check_percent(percent)
        tried: list[int] = []
        while (candidate := self._candidate(session, percent, now, tried)) is not None:
            code_id, code, fixed_percent, fixed_until = candidate
            tried.append(code_id)
            value = percent if fixed_percent is None else fixed_percent
            valid_until = (now + self.valid_for).date() if fixed_until is None else fixed_until.date()
            claimed = session.connection().execute(
                update(DiscountCode)
                .where(DiscountCode.id == code_id, DiscountCode.claimed_at.is_(None))
                .values(ticket_id=ticket_id, claimed_at=now, percent=value,
                        valid_until=_midnight(valid_until)))
            if claimed.rowcount == 1:
                return IssueResult(Discount(code, value, valid_until), pool_remaining(session, now), None)
        return self._nothing_for(session, percent, now)

    def _candidate(self, session: Session, percent: int, now: datetime,
                   tried: list[int]) -> tuple[int, str, int | None, datetime | None] | None:
        query = (select(DiscountCode.id, DiscountCode.code, DiscountCode.percent,
                        DiscountCode.valid_until)
                 .where(*_free_pool(now), _worth(percent))
                 .order_by(DiscountCode.percent.is_(None), DiscountCode.id)
                 .limit(1)
                 .with_for_update(skip_locked=True))
        if tried:
            # Termination even if the database showed a stale row: never try the same code twice.
            query = query.where(DiscountCode.id.not_in(tried))
        row = session.execute(query).first()
        return None if row is None else (row[0], row[1], row[2], row[3])

    @staticmethod
    def _nothing_for(session: Session, percent: int, now: datetime) -> IssueResult:
        remaining = pool_remaining(session, now)
        if remaining == 0:
            problem = "the discount pool is empty"
        elif _count(session, *_free_pool(now), _worth(percent)):
            problem = "every free pool code was being claimed by other closes at the same moment"
        else:
            problem = f"the discount pool has no code for {percent}% ({remaining} of other values left)"
        return IssueResult(None, remaining, problem)


def make_provider(name: str, *, prefix: str, valid_for: timedelta) -> DiscountProvider:
    """The provider that config's `closing.discount_provider` names."""
    if name == GENERATED:
        return GeneratedCodes(prefix=prefix, valid_for=valid_for)
    if name == POOL:
        return CodePool(valid_for=valid_for)
    raise ValueError(f"unknown discount provider {name!r}: expected {GENERATED!r} or {POOL!r}")


def parse_pool(lines: Iterable[str]) -> list[PoolEntry]:
    """Codes from a pool file: `CODE` or `CODE,percent,YYYY-MM-DD` a line, in file order.

    '#' comment lines, blank lines and a `code,...` header are skipped; fields may also be split by
    ';' or a tab, as spreadsheets save them; a percent may end in '%'. Raises PoolFileError naming
    the first bad line, so a half-understood file never fills the pool.
    """
    entries: list[PoolEntry] = []
    for number, raw in enumerate(lines, start=1):
        line = raw.strip().lstrip("\ufeff")
        if not line or line.startswith("#"):
            continue
        fields = [field.strip('"') for field in _FIELD_SPLIT.split(line)]
        if not entries and fields[0].lower() == "code":
            continue
        entries.append(_entry(number, fields))
    return entries


def _entry(number: int, fields: list[str]) -> PoolEntry:
    if len(fields) > 3:
        raise PoolFileError(f"line {number}: expected CODE or CODE,percent,YYYY-MM-DD")
    code, percent, until = [*fields, "", ""][:3]
    if not _CODE_RE.fullmatch(code):
        raise PoolFileError(f"line {number}: {code!r} is not a discount code (letters, digits, _ . -)")
    value: int | None = None
    if percent:
        digits = percent.removesuffix("%").strip()
        if not digits.isdigit() or not 0 < int(digits) <= 100:
            raise PoolFileError(f"line {number}: percent {percent!r} is not a whole number from 1 to 100")
        value = int(digits)
    expiry: date | None = None
    if until:
        try:
            expiry = date.fromisoformat(until)
        except ValueError:
            raise PoolFileError(f"line {number}: expiry {until!r} is not a date like 2027-03-31") from None
    return PoolEntry(code, value, expiry)


def load_pool(session: Session, path: Path) -> int:
    """Add the file's codes to the pool; codes already known (claimed or not) are skipped.

    Safe to run on every start: re-reading the same or a longer file only adds the new codes.
    Returns how many were added.
    """
    with path.open(encoding="utf-8-sig") as lines:
        entries = parse_pool(lines)
    first: dict[str, PoolEntry] = {}
    for entry in entries:
        first.setdefault(entry.code, entry)
    unique = list(first.values())
    known: set[str] = set()
    for start in range(0, len(unique), _CHUNK):
        chunk = [entry.code for entry in unique[start:start + _CHUNK]]
        known.update(session.scalars(select(DiscountCode.code).where(DiscountCode.code.in_(chunk))))
    new = [entry for entry in unique if entry.code not in known]
    session.add_all(DiscountCode(code=entry.code, source=POOL, percent=entry.percent,
                                 valid_until=None if entry.valid_until is None
                                 else _midnight(entry.valid_until))
                    for entry in new)
    session.flush()
    return len(new)


def pool_remaining(session: Session, now: datetime | None = None) -> int:
    """Free pool codes that have not expired (any value)."""
    return _count(session, *_free_pool(utcnow() if now is None else now))


def export_csv(session: Session, out: TextIO, source: str | None = None) -> int:
    """Issued codes, oldest first, as CSV for import into the shop platform; returns rows written.

    Columns: code, percent, valid_until (last valid day), ticket, issued_at (ISO 8601 UTC).
    """
    query = (select(DiscountCode.code, DiscountCode.percent, DiscountCode.valid_until,
                    DiscountCode.ticket_id, DiscountCode.claimed_at)
             .where(DiscountCode.claimed_at.is_not(None))
             .order_by(DiscountCode.claimed_at, DiscountCode.id))
    if source is not None:
        query = query.where(DiscountCode.source == source)
    writer = csv.writer(out)
    writer.writerow(["code", "percent", "valid_until", "ticket", "issued_at"])
    rows = 0
    for code, percent, valid_until, ticket_id, claimed_at in session.execute(query):
        writer.writerow([code, _cell(percent), _cell(valid_until, "%Y-%m-%d"), _cell(ticket_id),
                         _cell(claimed_at, "%Y-%m-%dT%H:%M:%SZ")])
        rows += 1
    return rows


def _free_pool(now: datetime) -> tuple[ColumnElement[bool], ...]:
    return (DiscountCode.source == POOL, DiscountCode.claimed_at.is_(None),
            or_(DiscountCode.valid_until.is_(None), DiscountCode.valid_until >= _midnight(now.date())))


def _worth(percent: int) -> ColumnElement[bool]:
    return or_(DiscountCode.percent == percent, DiscountCode.percent.is_(None))


def _count(session: Session, *conditions: ColumnElement[bool]) -> int:
    return session.scalar(select(func.count()).select_from(DiscountCode).where(*conditions)) or 0


def _check_percent(percent: int) -> None:
    if not 0 < percent <= 100:
        raise ValueError(f"a discount is 1 to 100 percent, not {percent}")


def _cell(value: int | datetime | None, time_format: str = "") -> str:
    if value is None:
        return ""
    return value.strftime(time_format) if isinstance(value, datetime) else str(value)


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day)

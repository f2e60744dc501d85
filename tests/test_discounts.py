"""Discount providers: generated codes, the shop's pool under concurrent closes, the CSV export."""

from __future__ import annotations

import io
import multiprocessing
import re
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers.pgserver import PostgresServer, unique_name
from sqlalchemy import Engine, event, select, text
from sqlalchemy.orm import Session, sessionmaker

from daemon.storage import db
from daemon.storage.models import DiscountCode, Ticket
from daemon.tickets import discounts
from daemon.tickets.discounts import (
    ALPHABET,
    CodePool,
    Discount,
    GeneratedCodes,
    IssueResult,
    PoolEntry,
    PoolFileError,
    export_csv,
    generate_code,
    load_pool,
    make_provider,
    parse_pool,
    pool_remaining,
)

NOW = datetime(2026, 11, 23, 10, 30, 5)
HANG_GUARD = 60  # seconds; only stops a broken implementation from hanging the suite


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'discounts.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
    engine.dispose()
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = db.make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sessions(engine: Engine) -> sessionmaker[Session]:
    return db.session_factory(engine)


def _tickets(sessions: sessionmaker[Session], count: int) -> list[int]:
    with sessions.begin() as session:
        tickets = [Ticket(customer_email=f"c{n}@example.org", language="es") for n in range(count)]
        session.add_all(tickets)
        session.flush()
        return [ticket.id for ticket in tickets]


def _pool(sessions: sessionmaker[Session], tmp_path: Path, content: str) -> int:
    path = tmp_path / "codes.txt"
    path.write_text(content, encoding="utf-8")
    with sessions.begin() as session:
        return load_pool(session, path)


def _issue(sessions: sessionmaker[Session], provider: discounts.DiscountProvider, ticket_id: int,
           percent: int = 10, now: datetime = NOW) -> IssueResult:
    with sessions.begin() as session:
        return provider.issue(session, ticket_id, percent, now)


def _row(sessions: sessionmaker[Session], code: str) -> DiscountCode:
    with sessions() as session:
        row = session.scalar(select(DiscountCode).where(DiscountCode.code == code))
        assert row is not None
        return row


# --- generated codes -------------------------------------------------------------------------

def test_generated_code_is_prefix_dash_and_unambiguous_characters() -> None:
    assert not set("0O1IL") & set(ALPHABET)
    code = generate_code("GRACIAS", 10)
    assert re.fullmatch(rf"GRACIAS-[{ALPHABET}]{{10}}", code)


def test_generated_codes_are_unique_and_use_the_whole_alphabet_evenly_over_100000_draws() -> None:
    codes = [generate_code("GRACIAS", 10) for _ in range(100_000)]
    assert len(set(codes)) == 100_000
    counts = Counter("".join(code.removeprefix("GRACIAS-") for code in codes))
    expected = 1_000_000 / len(ALPHABET)
    # 5% is about nine standard deviations: only a biased or shrunken alphabet falls outside.
    assert set(counts) == set(ALPHABET)
    assert all(abs(n - expected) < 0.05 * expected for n in counts.values())


def test_generated_issue_records_the_code_with_ticket_percent_and_expiry(
        sessions: sessionmaker[Session]) -> None:
    (ticket,) = _tickets(sessions, 1)
    result = _issue(sessions, GeneratedCodes(prefix="GRACIAS", valid_for=timedelta(days=30)), ticket, 15)
    assert result.discount is not None and result.problem is None and result.remaining is None
    assert result.discount.percent == 15 and result.discount.valid_until == date(2026, 12, 23)
    row = _row(sessions, result.discount.code)
    assert (row.source, row.ticket_id, row.percent, row.claimed_at) == ("generated", ticket, 15, NOW)
    assert row.valid_until == datetime(2026, 12, 23)


def test_generated_issue_draws_again_when_the_code_is_already_taken(
        sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = _tickets(sessions, 2)
    draws = iter(["GRACIAS-AAAAAAAAAA", "GRACIAS-AAAAAAAAAA", "GRACIAS-BBBBBBBBBB"])
    monkeypatch.setattr(discounts, "generate_code", lambda prefix, length: next(draws))
    provider = GeneratedCodes()
    assert _issue(sessions, provider, first).discount == Discount(
        "GRACIAS-AAAAAAAAAA", 10, date(2027, 2, 21))
    result = _issue(sessions, provider, second)
    assert result.discount is not None and result.discount.code == "GRACIAS-BBBBBBBBBB"


def test_generated_issue_fails_loudly_when_every_draw_is_taken(
        sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = _tickets(sessions, 2)
    monkeypatch.setattr(discounts, "generate_code", lambda prefix, length: "GRACIAS-AAAAAAAAAA")
    _issue(sessions, GeneratedCodes(), first)
    with pytest.raises(RuntimeError, match="all taken"):
        _issue(sessions, GeneratedCodes(), second)


def test_generated_codes_too_short_to_be_unguessable_are_refused() -> None:
    with pytest.raises(ValueError, match="at least 8"):
        GeneratedCodes(length=6)


def test_make_provider_builds_the_configured_provider() -> None:
    generated = make_provider("generated", prefix="MERCI", valid_for=timedelta(days=7))
    assert isinstance(generated, GeneratedCodes) and generated.prefix == "MERCI"
    pool = make_provider("pool", prefix="MERCI", valid_for=timedelta(days=7))
    assert isinstance(pool, CodePool) and pool.valid_for == timedelta(days=7)
    with pytest.raises(ValueError, match="unknown discount provider 'shopify'"):
        make_provider("shopify", prefix="X", valid_for=timedelta(days=1))


# --- pool file -------------------------------------------------------------------------------

def test_pool_file_skips_comments_blanks_and_header_and_reads_optional_fields() -> None:
    lines = ["code,percent,valid_until", "# from the shop, 2026-11", "", "  PLAIN-1  ",
             "FIXED-2,15,2027-01-31", "SEMI-3; 20%; 2027-02-28", "NOVALUE-4,,2027-03-31",
             "\"QUOTED-5\",5"]
    assert parse_pool(lines) == [
        PoolEntry("PLAIN-1", None, None),
        PoolEntry("FIXED-2", 15, date(2027, 1, 31)),
        PoolEntry("SEMI-3", 20, date(2027, 2, 28)),
        PoolEntry("NOVALUE-4", None, date(2027, 3, 31)),
        PoolEntry("QUOTED-5", 5, None),
    ]


@pytest.mark.parametrize(("line", "complaint"), [
    ("=HYPERLINK(1)", "not a discount code"),
    ("TWO WORDS", "not a discount code"),
    ("CODE,ten", "percent 'ten'"),
    ("CODE,150", "percent '150'"),
    ("CODE,10,31/01/2027", "expiry '31/01/2027'"),
    ("CODE,10,2027-01-31,extra", "expected CODE"),
])
def test_pool_file_bad_line_is_refused_with_its_number(line: str, complaint: str) -> None:
    with pytest.raises(PoolFileError, match=rf"^line 3: .*{re.escape(complaint)}"):
        parse_pool(["# codes", "GOOD-1", line])


def test_load_pool_adds_each_code_once_and_is_idempotent(
        sessions: sessionmaker[Session], tmp_path: Path) -> None:
    assert _pool(sessions, tmp_path, "A-1\nB-2,15,2027-01-31\nA-1,50\n") == 2
    assert _pool(sessions, tmp_path, "A-1\nB-2,15,2027-01-31\nC-3\n") == 1
    with sessions() as session:
        assert pool_remaining(session, NOW) == 3
    first = _row(sessions, "A-1")
    assert (first.source, first.percent, first.ticket_id, first.claimed_at) == ("pool", None, None, None)
    assert _row(sessions, "B-2").valid_until == datetime(2027, 1, 31)


def test_load_pool_skips_a_code_already_issued_as_generated(
        sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (ticket,) = _tickets(sessions, 1)
    monkeypatch.setattr(discounts, "generate_code", lambda prefix, length: "GRACIAS-AAAAAAAAAA")
    _issue(sessions, GeneratedCodes(), ticket)
    assert _pool(sessions, tmp_path, "GRACIAS-AAAAAAAAAA\nNEW-1\n") == 1
    assert _row(sessions, "GRACIAS-AAAAAAAAAA").source == "generated"


# --- pool claims -----------------------------------------------------------------------------

def test_pool_gives_codes_in_file_order_and_counts_what_is_left(
        sessions: sessionmaker[Session], tmp_path: Path) -> None:
    tickets = _tickets(sessions, 3)
    _pool(sessions, tmp_path, "FIRST\nSECOND\nTHIRD\n")
    pool = CodePool()
    results = [_issue(sessions, pool, ticket) for ticket in tickets]
    assert [r.discount.code if r.discount else None for r in results] == ["FIRST", "SECOND", "THIRD"]
    assert [r.remaining for r in results] == [2, 1, 0]
    assert _row(sessions, "SECOND").ticket_id == tickets[1]


def test_pool_value_and_expiry_from_the_file_win_over_the_asked_ones(
        sessions: sessionmaker[Session], tmp_path: Path) -> None:
    first, second = _tickets(sessions, 2)
    _pool(sessions, tmp_path, "SHOP-15,15,2027-01-31\nOPEN-VALUE\n")
    pool = CodePool(valid_for=timedelta(days=10))
    assert _issue(sessions, pool, first, 15).discount == Discount("SHOP-15", 15, date(2027, 1, 31))
    assert _issue(sessions, pool, second, 12).discount == Discount("OPEN-VALUE", 12, date(2026, 12, 3))
    row = _row(sessions, "OPEN-VALUE")
    assert (row.percent, row.valid_until, row.claimed_at) == (12, datetime(2026, 12, 3), NOW)


def test_pool_prefers_a_code_of_the_asked_value_and_never_substitutes_another_value(
        sessions: sessionmaker[Session], tmp_path: Path) -> None:
    first, second, third = _tickets(sessions, 3)
    _pool(sessions, tmp_path, "TWENTY,20\nANY\nTEN,10\n")
    pool = CodePool()
    assert [_issue(sessions, pool, ticket, 10).discount for ticket in (first, second)] == [
        Discount("TEN", 10, date(2027, 2, 21)), Discount("ANY", 10, date(2027, 2, 21))]
    result = _issue(sessions, pool, third, 10)
    assert result == IssueResult(None, 1, "the discount pool has no code for 10% (1 of other values left)")


def test_pool_skips_codes_past_their_expiry(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    (ticket,) = _tickets(sessions, 1)
    _pool(sessions, tmp_path, "OLD,10,2026-11-22\nLAST-DAY,10,2026-11-23\n")
    with sessions() as session:
        assert pool_remaining(session, NOW) == 1
    result = _issue(sessions, CodePool(), ticket)
    assert result.discount is not None and result.discount.code == "LAST-DAY"


def test_empty_pool_issues_nothing_and_says_why(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    first, second = _tickets(sessions, 2)
    _pool(sessions, tmp_path, "ONLY-ONE\n")
    assert _issue(sessions, CodePool(), first).remaining == 0
    assert _issue(sessions, CodePool(), second) == IssueResult(None, 0, "the discount pool is empty")
    assert _row(sessions, "ONLY-ONE").ticket_id == first


def test_pool_claim_rolls_back_with_the_close(sessions: sessionmaker[Session], tmp_path: Path) -> None:
    first, second = _tickets(sessions, 2)
    _pool(sessions, tmp_path, "ONLY-ONE\n")
    with sessions() as session:
        session.begin()
        assert CodePool().issue(session, first, 10, NOW).discount is not None
        session.rollback()
    result = _issue(sessions, CodePool(), second)
    assert result.discount is not None and result.discount.code == "ONLY-ONE"


def _meet_before_claiming(engine: Engine, barrier: Any) -> None:
    """Hold every connection at its claiming UPDATE until all racers have chosen their code."""

    def wait(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("UPDATE DISCOUNT_CODES"):
            barrier.wait(HANG_GUARD)

    event.listen(engine, "before_cursor_execute", wait)


def _assert_one_winner(results: dict[int, IssueResult], sessions: sessionmaker[Session]) -> None:
    winners = [ticket for ticket, result in results.items() if result.discount is not None]
    assert len(winners) == 1, results
    (loser,) = set(results) - set(winners)
    assert results[winners[0]].discount == Discount("LAST-ONE", 10, date(2027, 2, 21))
    assert results[loser] == IssueResult(None, 0, "the discount pool is empty")
    assert _row(sessions, "LAST-ONE").ticket_id == winners[0]


def test_two_threads_racing_on_the_last_pool_code_never_both_get_it(
        engine: Engine, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    tickets = _tickets(sessions, 2)
    _pool(sessions, tmp_path, "LAST-ONE\n")
    _meet_before_claiming(engine, threading.Barrier(2))
    results: dict[int, IssueResult] = {}

    def close(ticket: int) -> None:
        results[ticket] = _issue(sessions, CodePool(), ticket)

    threads = [threading.Thread(target=close, args=(ticket,)) for ticket in tickets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(HANG_GUARD)
    _assert_one_winner(results, sessions)


def _close_in_process(url: str, ticket: int, barrier: Any, out: Any) -> None:
    engine = db.make_engine(url)
    _meet_before_claiming(engine, barrier)
    result = _issue(db.session_factory(engine), CodePool(), ticket)
    engine.dispose()
    out.put((ticket, result))


def test_two_processes_racing_on_the_last_pool_code_never_both_get_it(
        db_url: str, sessions: sessionmaker[Session], tmp_path: Path) -> None:
    tickets = _tickets(sessions, 2)
    _pool(sessions, tmp_path, "LAST-ONE\n")
    context = multiprocessing.get_context("spawn")
    barrier, out = context.Barrier(2), context.Queue()
    processes = [context.Process(target=_close_in_process, args=(db_url, ticket, barrier, out))
                 for ticket in tickets]
    for process in processes:
        process.start()
    results = dict(out.get(timeout=HANG_GUARD) for _ in processes)
    for process in processes:
        process.join(HANG_GUARD)
    assert [process.exitcode for process in processes] == [0, 0]
    _assert_one_winner(results, sessions)


# --- export ----------------------------------------------------------------------------------

def test_export_writes_issued_codes_as_csv_oldest_first(
        sessions: sessionmaker[Session], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first, second = _tickets(sessions, 2)
    _pool(sessions, tmp_path, "POOL-1,15,2027-01-31\nPOOL-UNUSED\n")
    monkeypatch.setattr(discounts, "generate_code", lambda prefix, length: "GRACIAS-AAAAAAAAAA")
    _issue(sessions, GeneratedCodes(), first, 10, NOW)
    _issue(sessions, CodePool(), second, 15, NOW + timedelta(hours=1))
    out = io.StringIO(newline="")
    with sessions() as session:
        assert export_csv(session, out) == 2
    assert out.getvalue().splitlines() == [
        "code,percent,valid_until,ticket,issued_at",
        f"GRACIAS-AAAAAAAAAA,10,2027-02-21,{first},2026-11-23T10:30:05Z",
        f"POOL-1,15,2027-01-31,{second},2026-11-23T11:30:05Z",
    ]
    only_generated = io.StringIO(newline="")
    with sessions() as session:
        assert export_csv(session, only_generated, "generated") == 1
    assert "POOL-1" not in only_generated.getvalue()


# --- PostgreSQL: the SKIP LOCKED path --------------------------------------------------------

@pytest.fixture(scope="module")
def postgres_url(postgres: PostgresServer) -> str:
    """A database of its own on the session's throwaway PostgreSQL."""
    return postgres.create_database(unique_name("discounts"))


@pytest.fixture
def pg_sessions(postgres_url: str) -> Iterator[sessionmaker[Session]]:
    engine = db.make_engine(postgres_url)
    db.upgrade(engine)
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE discount_codes, tickets RESTART IDENTITY CASCADE"))
    yield db.session_factory(engine)
    engine.dispose()


def _without_waiting(session: Session) -> None:
    """A claim that waited for another close's row lock fails instead of hanging the test."""
    session.execute(text("SET LOCAL lock_timeout = '10s'"))


def test_postgres_close_skips_the_code_another_open_close_holds(
        pg_sessions: sessionmaker[Session], tmp_path: Path) -> None:
    first, second = _tickets(pg_sessions, 2)
    _pool(pg_sessions, tmp_path, "CODE-1\nCODE-2\n")
    with pg_sessions() as holder, holder.begin():
        held = CodePool().issue(holder, first, 10, NOW)
        with pg_sessions() as other, other.begin():
            _without_waiting(other)
            taken = CodePool().issue(other, second, 10, NOW)
    assert held.discount is not None and held.discount.code == "CODE-1"
    assert taken.discount is not None and taken.discount.code == "CODE-2"
    assert (_row(pg_sessions, "CODE-1").ticket_id, _row(pg_sessions, "CODE-2").ticket_id) == (first, second)


def test_postgres_close_racing_for_the_last_code_goes_without_one(
        pg_sessions: sessionmaker[Session], tmp_path: Path) -> None:
    first, second = _tickets(pg_sessions, 2)
    _pool(pg_sessions, tmp_path, "LAST-ONE\n")
    with pg_sessions() as holder, holder.begin():
        held = CodePool().issue(holder, first, 10, NOW)
        with pg_sessions() as other, other.begin():
            _without_waiting(other)
            missed = CodePool().issue(other, second, 10, NOW)
    assert held.discount is not None and held.discount.code == "LAST-ONE"
    assert missed.discount is None and missed.problem is not None and "other closes" in missed.problem
    assert _row(pg_sessions, "LAST-ONE").ticket_id == first
    out = io.StringIO(newline="")
    with pg_sessions() as session:
        assert pool_remaining(session, NOW) == 0
        assert export_csv(session, out, "pool") == 1

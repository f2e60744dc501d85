"""Rate limits on automatic customer mail: the ladder decision, its config, and where mail is queued."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from helpers.dbcheck import migrated_engine
from helpers.harness import customer_email
from pydantic import SecretStr
from sqlalchemy import Engine, select

from daemon.config import Config, ConfigError, Secrets, Settings, load_settings, parse_rate
from daemon.outbound.compose import Thread
from daemon.outbound.rate_limits import exceeded, lookback
from daemon.runtime.service import Components, assemble
from daemon.storage import db
from daemon.storage.models import Message, OutboxItem, Ticket

NOW = datetime(2026, 3, 2, 9, 0)
TEN_MINUTES = parse_rate("3/10m")
DAY = parse_rate("5/24h")
LADDER = [TEN_MINUTES, DAY]

# --------------------------------------------------------------------------- the decision


def _ago(*minutes: float) -> list[datetime]:
    return [NOW - timedelta(minutes=m) for m in minutes]


def test_under_every_rung_nothing_is_exceeded() -> None:
    assert exceeded(LADDER, _ago(1, 2), NOW) is None


def test_the_short_rung_stops_a_burst() -> None:
    assert exceeded(LADDER, _ago(1, 2, 3), NOW) == TEN_MINUTES


def test_old_mail_leaves_the_short_window_but_counts_in_the_long_one() -> None:
    assert exceeded(LADDER, _ago(20, 30, 40), NOW) is None
    assert exceeded(LADDER, _ago(20, 30, 40, 50, 60), NOW) == DAY


def test_mail_older_than_every_window_counts_for_nothing() -> None:
    assert exceeded(LADDER, _ago(*(1500 + i for i in range(50))), NOW) is None


def test_an_empty_ladder_never_limits() -> None:
    assert exceeded([], _ago(*range(100)), NOW) is None
    assert lookback([]) == (timedelta(0), 0)


def test_lookback_reads_the_longest_window_and_the_largest_count() -> None:
    assert lookback(LADDER) == (timedelta(hours=24), 5)


# --------------------------------------------------------------------------- the configuration


@pytest.mark.parametrize(("text", "limit", "window"), [
    ("3/10m", 3, timedelta(minutes=10)), (" 5 / 24h ", 5, timedelta(hours=24)),
    ("1/90s", 1, timedelta(seconds=90)), ("20/7d", 20, timedelta(days=7)),
])
def test_rates_are_read_as_count_per_duration(text: str, limit: int, window: timedelta) -> None:
    rate = parse_rate(text)
    assert (rate.limit, rate.window) == (limit, window)


@pytest.mark.parametrize("text", ["3", "3/", "/10m", "x/10m", "3/10", "0/10m", "3/0m", "-1/5m", "3/10w"])
def test_malformed_rates_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"rate|positive|duration"):
        parse_rate(text)


def _write(tmp_path: Path, limits: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f"""
[shop]
name = "Tienda"
address = "incidencias@example.com"
[imap]
host = "127.0.0.1"
security = "none"
username = "u"
password = "p"
[smtp]
host = "127.0.0.1"
security = "none"
[limits]
{limits}
""")
    return path


@pytest.mark.parametrize(("limits", "message"), [
    ('automatic_per_address = ["3/10m", "lots"]', "[limits] automatic_per_address.1: expected a rate"),
    ('automatic_per_ticket = ["5/10m", "3/24h"]', "[limits] automatic_per_ticket: 5/10m can never be"),
    ('automatic_per_ticket = ["3/1h", "4/60m"]', "have the same duration"),
    ('bounce_suppression = "soon"', "[limits] bounce_suppression: expected a duration"),
    ('per_address = ["3/10m"]', "[limits] per_address: unknown key"),
])
def test_config_errors_name_the_key(tmp_path: Path, limits: str, message: str) -> None:
    with pytest.raises(ConfigError) as error:
        load_settings(_write(tmp_path, limits))
    assert message in str(error.value)


def test_config_ladder_is_sorted_and_defaults_exist(tmp_path: Path) -> None:
    config = load_settings(_write(tmp_path, 'automatic_per_address = ["10/1d", "2/5m"]')).config
    assert [str(r) for r in config.limits.automatic_per_address] == ["2/5m", "10/1d"]
    assert config.limits.automatic_per_ticket and config.limits.bounce_suppression == timedelta(days=7)


def test_an_empty_ladder_switches_the_limit_off(tmp_path: Path) -> None:
    config = load_settings(_write(tmp_path, "automatic_per_address = []")).config
    assert config.limits.automatic_per_address == []


# --------------------------------------------------------------------------- where mail is queued


@dataclass
class Clock:
    now: datetime = NOW

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = migrated_engine(tmp_path, "limits.db")
    yield engine
    engine.dispose()


def _shop(engine: Engine, clock: Clock, per_address: list[str], per_ticket: list[str]) -> Components:
    config = Config.model_validate({
        "shop": {"name": "Tienda", "address": "incidencias@example.com", "languages": ["es"],
                 "default_language": "es"},
        "imap": {"host": "127.0.0.1", "security": "none", "username": "u"},
        "smtp": {"host": "127.0.0.1", "security": "none"},
        "limits": {"automatic_per_address": per_address, "automatic_per_ticket": per_ticket},
    })
    settings = Settings(config=config, path=Path("config.toml"),
                        secrets=Secrets(imap_password=None, smtp_password=None,
                                        agent_secret=SecretStr("secret")))
    return assemble(settings, engine, db.session_factory(engine), clock)


def _acknowledgements(shop: Components) -> list[OutboxItem]:
    with shop.sessions() as session:
        return list(session.scalars(select(OutboxItem).where(OutboxItem.kind == "acknowledgement")))


def _new_ticket(shop: Components, n: int, sender: str = "bot@example.net") -> int:
    outcome = shop.ingestor.ingest(customer_email(f"Asunto distinto {n}", "Hola", sender=sender))
    assert outcome.ticket is not None
    return outcome.ticket


def test_acknowledgements_to_one_address_stop_at_the_limit_and_resume_after_the_window(
        engine: Engine, clock: Clock) -> None:
    shop = _shop(engine, clock, ["3/10m", "5/24h"], [])
    for n in range(6):
        _new_ticket(shop, n)
    assert len(_acknowledgements(shop)) == 3
    assert shop.mailer.withheld["rate-limited"] == 3

    clock.now += timedelta(minutes=11)
    for n in range(6, 9):
        _new_ticket(shop, n)
    assert len(_acknowledgements(shop)) == 5, "the 24-hour rung holds once the 10-minute one is clear"

    clock.now += timedelta(hours=24)
    _new_ticket(shop, 99)
    assert len(_acknowledgements(shop)) == 6


def test_a_withheld_acknowledgement_leaves_a_note_and_the_ticket_still_opens(
        engine: Engine, clock: Clock) -> None:
    shop = _shop(engine, clock, ["1/10m"], [])
    _new_ticket(shop, 1)
    second = _new_ticket(shop, 2)
    with shop.sessions() as session:
        ticket = session.get_one(Ticket, second)
        notes = session.scalars(select(Message).where(Message.ticket_id == second,
                                                      Message.direction == "note")).all()
    assert ticket.status == "open"
    [note] = notes
    assert note.kind == "withheld-acknowledgement" and "rate limit 1/10m" in note.text
    assert ticket.last_outbound_at == NOW, "the update clock still starts"


def test_other_addresses_are_not_limited_by_one_noisy_address(engine: Engine, clock: Clock) -> None:
    shop = _shop(engine, clock, ["1/10m"], [])
    _new_ticket(shop, 1, sender="bot@example.net")
    _new_ticket(shop, 2, sender="bot@example.net")
    _new_ticket(shop, 3, sender="maria@example.net")
    assert sorted(i.recipients for i in _acknowledgements(shop)) == ["bot@example.net",
                                                                     "maria@example.net"]


def _send(shop: Components, number: int, kind: str, automatic: str | None) -> bool:
    with shop.sessions.begin() as session:
        ticket = session.get_one(Ticket, number)
        return shop.mailer.to_customer(session, ticket, "update",
                                       {"status_line": None, "update_days": 3}, kind=kind,
                                       thread=Thread(), automatic=automatic)


def test_automatic_mail_per_ticket_is_limited(engine: Engine, clock: Clock) -> None:
    shop = _shop(engine, clock, [], ["2/1h"])
    number = _new_ticket(shop, 1)
    assert _send(shop, number, "update", "auto-generated")
    assert not _send(shop, number, "update", "auto-generated")
    other = _new_ticket(shop, 2)
    assert _send(shop, other, "update", "auto-generated")


def test_agent_replies_and_closing_mail_are_never_limited(engine: Engine, clock: Clock) -> None:
    shop = _shop(engine, clock, ["1/10m"], ["1/10m"])
    number = _new_ticket(shop, 1)
    for _ in range(5):
        assert _send(shop, number, "agent-reply", None)
    assert _send(shop, number, "closing", None)
    assert not _send(shop, number, "update", "auto-generated")
    with shop.sessions() as session:
        automatic = session.scalars(select(OutboxItem.automatic).where(OutboxItem.ticket_id == number))
        assert sorted(automatic) == [False] * 6 + [True]


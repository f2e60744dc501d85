"""The report: exact figures on a hand-built database, its renderings, and the weekly email."""

from __future__ import annotations

import json
from datetime import datetime, time
from email import message_from_bytes, policy
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from helpers.configs import offline_config
from helpers.dbcheck import configured_url, migrated_engine
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from test_lifecycle import Shop, _shop

from daemon.cli import main
from daemon.config import Config
from daemon.storage.models import Direction, DiscountCode, Message, OutboxItem, Promise, Ticket
from daemon.tickets.business_hours import business_seconds
from daemon.tickets.lifecycle import last_weekly_due
from daemon.tickets.report.figures import hours
from daemon.tickets.report.period import PeriodError, period

WEEKDAYS_ONLY = ["mon", "tue", "wed", "thu", "fri"]


def d(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _ticket(session: Session, number: int, created: str, *, tags: str = "", language: str = "es",
            mailbox: str = "default", replied: str | None = None, closed: str | None = None,
            score: int | None = None, scored: str | None = None, faq: str = "",
            self_solved: bool = False, outs: tuple[str, ...] = ()) -> None:
    session.add(Ticket(
        id=number, status="closed" if closed else "open", customer_email=f"c{number}@example.net",
        subject=f"Asunto {number}", subject_key=f"asunto {number}", language=language,
        created_at=d(created), updated_at=d(created), tags=tags, mailbox=mailbox,
        first_agent_reply_at=d(replied) if replied else None,
        closed_at=d(closed) if closed else None, satisfaction=score,
        satisfaction_at=d(scored) if scored else None, faq=faq, self_solved=self_solved))
    session.flush()
    for index, sent in enumerate(outs):
        session.add(Message(ticket_id=number, direction=Direction.OUT,
                            message_id=f"out-{number}-{index}@example.com", created_at=d(sent)))


def _build(engine: Engine) -> None:
    """The shop's week of 2026-11-02 (Madrid is UTC+1). Worked out by hand in the test below."""
    with Session(engine) as session, session.begin():
        # opened Mon 10:00 local, answered 2 h later, closed a day later, scored 5, a 10 % code
        _ticket(session, 1, "2026-11-02 09:00", tags="retraso", replied="2026-11-02 11:00",
                closed="2026-11-03 09:00", score=5, scored="2026-11-03 10:00", faq="retraso",
                outs=("2026-11-02 09:00", "2026-11-02 11:00", "2026-11-03 09:00"))
        # opened Mon 17:00 local, answered Tue 09:30 local: 16.5 h on the clock, 1.5 business
        _ticket(session, 2, "2026-11-02 16:00", tags="roto", language="fr",
                replied="2026-11-03 08:30", closed="2026-11-05 16:00", score=2,
                scored="2026-11-05 18:00", outs=("2026-11-02 16:00", "2026-11-05 16:00"))
        # opened Fri 17:30 local, answered Saturday: 17.5 h on the clock, 0.5 business; open
        _ticket(session, 3, "2026-11-06 16:30", tags="retraso,talla",
                replied="2026-11-07 10:00", faq="retraso,talla",
                outs=("2026-11-06 16:30", "2026-11-07 10:00"))
        # another mailbox, never answered by an agent: solved by the customer with the FAQ
        _ticket(session, 4, "2026-11-04 10:00", language="en", mailbox="tienda2",
                closed="2026-11-04 12:00", faq="retraso", self_solved=True,
                outs=("2026-11-04 10:00", "2026-11-04 12:00"))
        # older and open: last mail on 29 October, nothing since — forgotten
        _ticket(session, 5, "2026-10-20 10:00", tags="roto", replied="2026-10-20 12:00",
                outs=("2026-10-20 10:00", "2026-10-29 10:00"))
        # older and open, but written to every three days: not forgotten
        _ticket(session, 6, "2026-10-25 10:00", outs=("2026-10-25 10:00", "2026-10-28 10:00",
                                                      "2026-10-31 10:00", "2026-11-03 10:00",
                                                      "2026-11-06 10:00"))
        # wholly before and after the period
        _ticket(session, 7, "2026-10-01 10:00", tags="roto", closed="2026-10-10 10:00", score=4,
                scored="2026-10-11 10:00", outs=("2026-10-01 10:00",))
        _ticket(session, 8, "2026-11-09 10:00", tags="roto", outs=("2026-11-09 10:00",))
        session.add_all([  # quick answers in mail to customers: two in the period, one before
            Message(ticket_id=1, direction=Direction.OUT, message_id="answer-1@example.com",
                    created_at=d("2026-11-02 11:05"), answers="envio"),
            Message(ticket_id=3, direction=Direction.OUT, message_id="answer-3@example.com",
                    created_at=d("2026-11-07 10:30"), answers="envio,disculpa"),
            Message(ticket_id=7, direction=Direction.OUT, message_id="answer-7@example.com",
                    created_at=d("2026-10-02 10:00"), answers="envio"),
        ])
        session.add_all([
            Promise(ticket_id=1, agent="ana@example.com", text="llamar", created_at=d("2026-11-02 12:00"),
                    due_at=d("2026-11-03 09:00"), done_at=d("2026-11-03 08:00")),
            Promise(ticket_id=2, agent="ana@example.com", text="reenviar", created_at=d("2026-11-03 09:00"),
                    due_at=d("2026-11-04 09:00"), done_at=d("2026-11-04 15:00")),
            Promise(ticket_id=3, agent="luis@example.com", text="foto", created_at=d("2026-11-06 17:00"),
                    due_at=d("2026-11-07 09:00")),
            Promise(ticket_id=6, agent="luis@example.com", text="más tarde",
                    created_at=d("2026-10-28 10:00"), due_at=d("2026-11-10 09:00")),
            DiscountCode(code="GRACIAS-1", source="generated", percent=10, ticket_id=1,
                         claimed_at=d("2026-11-03 09:00")),
            DiscountCode(code="GRACIAS-2", source="generated", percent=15, ticket_id=2,
                         claimed_at=d("2026-11-05 16:00")),
            DiscountCode(code="GRACIAS-7", source="generated", percent=10, ticket_id=7,
                         claimed_at=d("2026-10-10 10:00")),
        ])


EXPECTED: dict[str, Any] = {
    "period": {"since": "2026-11-01T23:00:00Z", "until": "2026-11-08T23:00:00Z"},
    "tickets": {"new": 4, "closed": 3, "open": 3},
    "by_reason": {"retraso": 2, "roto": 1, "talla": 1, "(none)": 1},
    "by_language": {"es": 2, "fr": 1, "en": 1},
    "by_mailbox": {"default": 3, "tienda2": 1},
    "first_response_hours": {"count": 3, "median": 16.5, "p90": 17.5, "unanswered": 1},
    "first_response_business_hours": {"count": 3, "median": 1.5, "p90": 2.0},
    "resolution_hours": {"count": 3, "median": 24.0, "p90": 72.0},
    "forgotten": [5],
    "promises": {"made": 3, "kept": 1, "late": 2},
    "satisfaction": {"answers": 2, "mean": 3.5,
                     "distribution": {"1": 0, "2": 1, "3": 0, "4": 0, "5": 1},
                     "lowest": [{"ticket": 2, "score": 2, "subject": "Asunto 2"}]},
    "faq_offered": {"retraso": 3, "talla": 1},
    "self_solved": {"total": 1, "by_faq": {"retraso": 1}},
    "quick_answers": {"envio": 2, "disculpa": 1},
    "discounts": {"issued": 2, "by_percent": {"10": 1, "15": 1}},
}


def _config_file(tmp_path: Path, url: str, extra: str = "") -> Path:
    config = tmp_path / "config.toml"
    config.write_text(offline_config(url, shop='timezone = "Europe/Madrid"', rest=f"""
[updates]
hours = "09:00-18:00"
days = {json.dumps(WEEKDAYS_ONLY)}
{extra}
"""))
    return config


@pytest.fixture
def built(tmp_path: Path) -> Path:
    engine = migrated_engine(tmp_path)
    _build(engine)
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()
    return _config_file(tmp_path, url)


def _report(config: Path, capsys: pytest.CaptureFixture[str], *args: str) -> str:
    assert main(["-c", str(config), "report", "--since", "2026-11-02", "--until", "2026-11-09",
                 *args]) == 0
    return capsys.readouterr().out


def test_report_json_gives_exactly_the_figures_worked_out_by_hand(
        built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert configured_url(built)
    assert json.loads(_report(built, capsys, "--json")) == EXPECTED


def test_report_csv_has_one_row_per_figure_with_the_json_keys(
        built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _report(built, capsys, "--csv").splitlines()
    assert rows[0] == "figure,value"
    assert "tickets.new,4" in rows and "first_response_hours.median,16.5" in rows
    assert "resolution_hours.p90,72.0" in rows and "forgotten,5" in rows
    assert "quick_answers.envio,2" in rows and "by_reason.(none),1" in rows


def test_report_text_names_the_figures(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = _report(built, capsys)
    assert "Incidencias: 4 nuevas, 3 cerradas, 3 abiertas al final" in text
    assert "#5" in text and "mediana 16.5, percentil 90 17.5 (n=3)" in text


def test_a_bad_period_is_a_usage_error(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-c", str(built), "report", "--since", "last week"]) == 2
    assert "30d" in capsys.readouterr().err
    assert main(["-c", str(built), "report", "--since", "2026-11-09", "--until", "2026-11-02"]) == 2


# --- pure parts ---------------------------------------------------------------------------------

def test_business_seconds_skip_nights_and_days_off() -> None:
    friday_evening, monday_morning = d("2026-11-06 16:00"), d("2026-11-09 09:00")  # 17:00, 10:00
    assert business_seconds(friday_evening, monday_morning, "Europe/Madrid", time(9), time(18),
                            WEEKDAYS_ONLY) == 2 * 3600
    assert business_seconds(monday_morning, friday_evening, "Europe/Madrid", time(9), time(18),
                            WEEKDAYS_ONLY) == 0


def test_median_and_nearest_rank_90th_percentile() -> None:
    from datetime import timedelta

    ten = [timedelta(hours=h) for h in range(1, 11)]
    assert (hours(ten).median, hours(ten).p90) == (5.5, 9.0)
    assert hours([]).median is None and hours([]).count == 0


def test_periods_from_durations_and_shop_dates() -> None:
    now = d("2026-11-09 12:00")
    assert period("30d", None, now, "Europe/Madrid") == (d("2026-10-10 12:00"), now)
    assert period("2026-07-01", "2026-07-02", now, "Europe/Madrid") == (
        d("2026-06-30 22:00"), d("2026-07-01 22:00"))
    with pytest.raises(PeriodError):
        period("yesterday", None, now, "Europe/Madrid")


def test_the_weekly_due_moment_is_the_latest_weekday_and_hour_passed() -> None:
    from zoneinfo import ZoneInfo

    zone = ZoneInfo("Europe/Madrid")
    monday_7 = datetime(2026, 11, 9, 7, 0, tzinfo=zone)
    assert last_weekly_due(monday_7, 0, 8) == datetime(2026, 11, 2, 8, 0, tzinfo=zone)
    assert last_weekly_due(monday_7.replace(hour=8), 0, 8) == monday_7.replace(hour=8)
    assert last_weekly_due(monday_7, 2, 8) == datetime(2026, 11, 4, 8, 0, tzinfo=zone)


# --- the weekly email ---------------------------------------------------------------------------

class _Charts(HTMLParser):
    """What a mail client would fetch or run, and the bars the charts draw."""

    def __init__(self) -> None:
        super().__init__()
        self.remote: list[str] = []
        self.forbidden: list[str] = []
        self.bars: list[int] = []
        self.values: list[str] = []
        self._in_value = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("img", "script", "link", "iframe", "object", "style"):
            self.forbidden.append(tag)
        self.remote += [v for k, v in attrs if k in ("src", "href", "background") and v]
        if tag == "td" and found.get("class") == "bar":
            self.bars.append(int(found["width"] or 0))
        self._in_value = tag == "td" and found.get("class") == "value"

    def handle_data(self, data: str) -> None:
        if self._in_value:
            self.values.append(data)
            self._in_value = False


def _weekly_config(tmp_path: Path, **report: Any) -> Config:
    return Config.model_validate({
        "shop": {"name": "Tienda", "address": "incidencias@example.com",
                 "languages": ["es", "fr", "en"], "default_language": "es",
                 "timezone": "Europe/Madrid"},
        "imap": {"host": "127.0.0.1", "security": "none", "username": "u"},
        "smtp": {"host": "127.0.0.1", "security": "none"},
        "agents": {"addresses": ["ana@example.com", "luis@example.com"]},
        "escalation": {"digest_hour": None},
        "updates": {"hours": "09:00-18:00", "days": WEEKDAYS_ONLY},
        "report": {"weekday": "mon", "hour": 8, **report},
    })


def _reports(shop: Shop) -> list[OutboxItem]:
    return [row for row in shop.new_mail() if row.kind == "report"]


def test_the_weekly_report_goes_once_at_its_hour_even_across_a_restart(tmp_path: Path) -> None:
    shop = _shop(tmp_path, _weekly_config(tmp_path))
    _build(shop.parts.engine)
    shop.clock.now = d("2026-11-02 07:30")  # Monday 08:30 in Madrid, the daemon's first sweep:
    shop.parts.lifecycle.sweep()              # it notes the due moment and sends nothing
    assert _reports(shop) == []
    shop.clock.now = d("2026-11-09 06:59")  # a week later, 07:59 in Madrid: not yet
    shop.parts.lifecycle.sweep()
    assert _reports(shop) == []
    shop.clock.now = d("2026-11-09 07:00")
    shop.parts.lifecycle.sweep()
    shop.parts.lifecycle.sweep()
    sent = _reports(shop)
    assert sorted(r.recipients for r in sent) == ["ana@example.com", "luis@example.com"]
    restarted = _shop(tmp_path, _weekly_config(tmp_path))  # same database, a new daemon
    restarted.seen.update(row.id for row in restarted.new_mail())
    restarted.clock.now = d("2026-11-09 09:30")
    restarted.parts.lifecycle.sweep()
    assert _reports(restarted) == []
    restarted.clock.now = d("2026-11-16 07:00")
    restarted.parts.lifecycle.sweep()
    assert len(_reports(restarted)) == 2, "the next week's report, one per agent"

    mail = message_from_bytes(sent[0].raw, policy=policy.default)
    assert isinstance(mail, EmailMessage) and mail.get_content_type() == "multipart/alternative"
    plain, rich = mail.get_body(("plain",)), mail.get_body(("html",))
    assert plain is not None and rich is not None
    assert "3 nuevas" in str(plain.get_content())  # its own mailbox: not tienda2's ticket
    charts = _Charts()
    charts.feed(str(rich.get_content()))
    assert charts.forbidden == [] and charts.remote == []
    assert max(charts.bars) == 300 and charts.values[:3] == ["3", "2", "3"]


def test_the_report_goes_to_its_own_list_and_not_at_all_with_an_empty_one(tmp_path: Path) -> None:
    shop = _shop(tmp_path, _weekly_config(tmp_path, to=["owner@example.com"]))
    shop.clock.now = d("2026-11-08 07:00")
    shop.parts.lifecycle.sweep()
    shop.clock.now = d("2026-11-09 07:00")
    shop.parts.lifecycle.sweep()
    assert [r.recipients for r in _reports(shop)] == ["owner@example.com"]
    off = _shop(tmp_path / "off", _weekly_config(tmp_path, to=[]))
    for moment in ("2026-11-08 07:00", "2026-11-09 07:00", "2026-11-16 07:00"):
        off.clock.now = d(moment)
        off.parts.lifecycle.sweep()
    assert _reports(off) == []

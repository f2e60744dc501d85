"""Automatic mail waits for the shop's business hours (frozen clock, no I/O)."""

from __future__ import annotations

from datetime import datetime, time

from daemon.tickets.business_hours import in_window, next_window

MADRID = "Europe/Madrid"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat")
OPEN, CLOSE = time(9, 0), time(20, 0)


def test_an_update_due_on_sunday_at_3am_goes_out_on_monday_at_opening() -> None:
    sunday_3am_madrid = datetime(2026, 3, 1, 2, 0)  # 03:00 in Madrid (UTC+1)
    assert next_window(sunday_3am_madrid, MADRID, OPEN, CLOSE, DAYS) == datetime(2026, 3, 2, 8, 0)


def test_inside_the_window_nothing_waits() -> None:
    tuesday_noon = datetime(2026, 3, 3, 11, 0)
    assert next_window(tuesday_noon, MADRID, OPEN, CLOSE, DAYS) == tuesday_noon
    assert in_window(tuesday_noon, MADRID, OPEN, CLOSE, DAYS)


def test_after_closing_time_it_waits_for_the_next_morning() -> None:
    saturday_2130 = datetime(2026, 3, 7, 20, 30)  # 21:30 Madrid, Saturday; Sunday is closed
    assert next_window(saturday_2130, MADRID, OPEN, CLOSE, DAYS) == datetime(2026, 3, 9, 8, 0)


def test_opening_hour_follows_daylight_saving_time() -> None:
    sunday_after_dst = datetime(2026, 3, 29, 1, 0)  # DST starts 29 March: Madrid is UTC+2
    assert next_window(sunday_after_dst, MADRID, OPEN, CLOSE, DAYS) == datetime(2026, 3, 30, 7, 0)

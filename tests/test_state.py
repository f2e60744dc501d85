"""The ticket state-transition table, and that nothing else changes a ticket's status."""

from __future__ import annotations

import ast
from datetime import datetime
from pathlib import Path

import pytest

from daemon.storage.models import Ticket, TicketStatus
from daemon.tickets import state
from daemon.tickets.state import TRANSITIONS, Event, InvalidTransition, plan

NOW = datetime(2026, 3, 2, 10, 0)
EARLIER = datetime(2026, 2, 20, 9, 0)
DAEMON = Path(__file__).resolve().parent.parent / "daemon"


def _ticket(status: str | None, **fields: object) -> Ticket:
    ticket = Ticket(customer_email="a@example.org", language="es", **fields)
    ticket.status = status  # type: ignore[assignment]
    return ticket


def test_every_event_has_exactly_one_row() -> None:
    assert set(TRANSITIONS) == set(Event)


def test_a_new_ticket_opens_and_nothing_else_can_be_opened_twice() -> None:
    ticket = _ticket(None)
    change = state.apply(ticket, Event.OPENED, NOW)
    assert (change.before, change.after, ticket.status) == (None, "open", "open")
    with pytest.raises(InvalidTransition):
        state.apply(ticket, Event.OPENED, NOW)


def test_customer_writing_while_waiting_reopens_work_and_stops_the_waiting_clock() -> None:
    ticket = _ticket(TicketStatus.WAITING, waiting_since=EARLIER, waiting_reminded_at=EARLIER)
    state.apply(ticket, Event.CUSTOMER_WROTE, NOW)
    assert ticket.status == TicketStatus.OPEN
    assert ticket.waiting_since is None and ticket.waiting_reminded_at is None


@pytest.mark.parametrize("status", [TicketStatus.OPEN, TicketStatus.CLOSED])
def test_customer_wrote_only_leaves_waiting(status: str) -> None:
    ticket = _ticket(status, closed_at=EARLIER)
    with pytest.raises(InvalidTransition):
        state.apply(ticket, Event.CUSTOMER_WROTE, NOW)
    assert ticket.status == status and ticket.closed_at == EARLIER


def test_reopening_forgets_when_it_was_closed() -> None:
    ticket = _ticket(TicketStatus.CLOSED, closed_at=EARLIER, waiting_since=EARLIER)
    state.apply(ticket, Event.REOPENED, NOW)
    assert ticket.status == TicketStatus.OPEN
    assert ticket.closed_at is None and ticket.waiting_since is None


def test_waiting_starts_a_fresh_clock_and_a_fresh_reminder() -> None:
    ticket = _ticket(TicketStatus.OPEN, waiting_since=EARLIER, waiting_reminded_at=EARLIER)
    state.apply(ticket, Event.WAITING, NOW)
    assert ticket.status == TicketStatus.WAITING
    assert ticket.waiting_since == NOW and ticket.waiting_reminded_at is None


def test_waiting_on_a_closed_ticket_leaves_no_closing_date_behind() -> None:
    ticket = _ticket(TicketStatus.CLOSED, closed_at=EARLIER)
    state.apply(ticket, Event.WAITING, NOW)
    assert ticket.status == TicketStatus.WAITING and ticket.closed_at is None


@pytest.mark.parametrize("status", [TicketStatus.OPEN, TicketStatus.WAITING])
def test_closing_records_when(status: str) -> None:
    ticket = _ticket(status)
    state.apply(ticket, Event.CLOSED, NOW)
    assert ticket.status == TicketStatus.CLOSED and ticket.closed_at == NOW


def test_plan_is_pure_and_lists_every_field_it_sets() -> None:
    change = plan(TicketStatus.WAITING, Event.REOPENED, NOW)
    assert dict(change.fields) == {"status": "open", "closed_at": None, "waiting_since": None,
                                   "waiting_reminded_at": None}


def _assigned_fields(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, field) for every assignment or keyword that would set a state-owned ticket field."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        for target in targets:
            for part in ast.walk(target):
                if isinstance(part, ast.Attribute) and part.attr in state.OWNED_FIELDS:
                    found.append((node.lineno, part.attr))
        if isinstance(node, ast.Call):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else \
                node.func.id if isinstance(node.func, ast.Name) else ""
            if name in ("Ticket", "values", "setattr") or name.endswith("Ticket"):
                found += [(node.lineno, k.arg) for k in node.keywords
                          if k.arg in state.OWNED_FIELDS]
            if name == "setattr" and len(node.args) > 1 and isinstance(node.args[1], ast.Constant) \
                    and node.args[1].value in state.OWNED_FIELDS:
                found.append((node.lineno, str(node.args[1].value)))
    return found


# Below tickets/ nothing can hold a ticket's state (the layering test forbids importing it), so a
# `status` there is another record's: outbox items in outbound/, shop orders in shop/.
_OTHER_STATUSES = ("outbound/", "shop/")


def test_no_module_but_state_assigns_a_tickets_status() -> None:
    offenders = []
    for path in sorted(DAEMON.rglob("*.py")):
        relative = path.relative_to(DAEMON).as_posix()
        if relative == "tickets/state.py":
            continue
        for line, name in _assigned_fields(ast.parse(path.read_text(encoding="utf-8"))):
            if not (name == "status" and relative.startswith(_OTHER_STATUSES)):
                offenders.append(f"daemon/{relative}:{line} sets {name}")
    assert offenders == [], "change a ticket's status through daemon.tickets.state.apply"


def test_the_scan_sees_the_forms_it_forbids() -> None:
    source = ("t.status = 'open'\nt.closed_at, x = None, 1\nTicket(status='open')\n"
              "update(Ticket).values(waiting_since=None)\nsetattr(t, 'status', 'x')\n")
    assert [name for _, name in _assigned_fields(ast.parse(source))] == \
        ["status", "closed_at", "status", "waiting_since", "status"]

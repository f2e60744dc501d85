"""Problems as JSON objects and short tables for `incidencias problems list/show`."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from daemon.storage.models import Problem, ProblemEvent, Ticket
from daemon.storage.views import iso


def problem_object(problem: Problem, ticket_count: int, open_count: int) -> dict[str, Any]:
    return {
        "name": problem.name,
        "title": problem.title,
        "status": problem.state,
        "status_line": problem.status_line,
        "keywords": [w for w in problem.keywords.split(",") if w],
        "mailbox": problem.mailbox,
        "created_at": iso(problem.created_at),
        "created_by": problem.created_by or None,
        "closed_at": iso(problem.resolved_at),
        "ticket_count": ticket_count,
        "open_ticket_count": open_count,
    }


def list_problems(session: Session) -> list[dict[str, Any]]:
    """Every problem, newest first, with how many tickets it has and how many are not closed."""
    counts = (select(Ticket.problem_id, func.count().label("n"),
                     func.count().filter(Ticket.status != "closed").label("active"))
              .where(Ticket.problem_id.is_not(None)).group_by(Ticket.problem_id).subquery())
    rows = session.execute(
        select(Problem, func.coalesce(counts.c.n, 0), func.coalesce(counts.c.active, 0))
        .outerjoin(counts, counts.c.problem_id == Problem.id)
        .order_by(Problem.created_at.desc(), Problem.id.desc())).all()
    return [problem_object(problem, n, active) for problem, n, active in rows]


def show_problem(session: Session, problem: Problem) -> dict[str, Any]:
    """The problem's fields, its tickets and its history."""
    tickets = problem.tickets
    found = problem_object(problem, len(tickets),
                           sum(t.status != "closed" for t in tickets))
    found["tickets"] = [
        {"id": t.id, "status": t.status, "customer": t.customer_email,
         "customer_name": t.customer_name, "language": t.language, "subject": t.subject,
         "discount_code": t.discount_code}
        for t in tickets]
    found["events"] = [
        {"kind": e.kind, "agent": e.agent or None, "text": e.text, "created_at": iso(e.created_at)}
        for e in session.scalars(select(ProblemEvent).where(ProblemEvent.problem_id == problem.id)
                                 .order_by(ProblemEvent.id))]
    return found


def problem_table(problems: list[dict[str, Any]]) -> str:
    lines = [f"{'name':24}  {'status':6}  {'tickets':>7}  {'open':>5}  title"]
    lines += [f"{p['name'][:24]:24}  {p['status']:6}  {p['ticket_count']:>7}  "
              f"{p['open_ticket_count']:>5}  {p['title'][:60]}" for p in problems]
    return "\n".join(lines)


def problem_detail(problem: dict[str, Any]) -> str:
    lines = [f"Problem {problem['name']}  [{problem['status']}]  {problem['title']}"]
    if problem["status_line"]:
        lines.append(f"status line: {problem['status_line']}")
    if problem["keywords"]:
        lines.append(f"keywords: {', '.join(problem['keywords'])}")
    lines.append(f"tickets: {problem['ticket_count']} ({problem['open_ticket_count']} not closed)")
    lines += [f"  #{t['id']:<6} {t['status']:8} {t['language']:4} {t['customer'][:40]:40} "
              f"{t['subject'][:50]}" for t in problem["tickets"]]
    lines += ["", "history:"] + [f"  {e['created_at']}  {e['kind']:10} {e['agent'] or ''}"
                                 for e in problem["events"]]
    return "\n".join(lines)

"""How long queueing a problem broadcast takes: one agent reply to 1,000 linked tickets (issue 16).

    .venv/bin/python -m bench.problem_broadcast [--tickets 1000] [--runs 3] [--out bench/results]

A fresh SQLite database gets N open tickets (customers in es/fr/en, each with their first message),
all linked to one problem; then the same reply with `[es]`, `[fr]` and `[en]` blocks is broadcast
`--runs` times, each in its own transaction exactly as the daemon does for an agent's email:
parse, render each customer's mail in their language, compose it in their thread, queue it, tell
the agents, commit. The figure is the wall time from the start of the transaction to its commit.
Writes `<out>/<date>-problem-broadcast.json` and prints one line per run.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from daemon.config import Config, Secrets, Settings
from daemon.runtime.service import assemble
from daemon.storage import db
from daemon.storage.models import Direction, Message, Problem, Ticket, TicketStatus

LANGUAGES = ("es", "fr", "en")
REPLY = ("[es]\nLa huelga de transportes termina el lunes; tu paquete sale ese mismo día.\n\n"
         "[fr]\nLa grève des transports se termine lundi ; votre colis partira le jour même.\n\n"
         "[en]\nThe transport strike ends on Monday; your parcel leaves that same day.\n")


def _config() -> Config:
    return Config.model_validate({
        "shop": {"name": "Tienda", "address": "incidencias@example.com",
                 "languages": list(LANGUAGES), "default_language": "es"},
        "imap": {"host": "127.0.0.1", "security": "none", "username": "u"},
        "smtp": {"host": "127.0.0.1", "security": "none"},
        "agents": {"addresses": ["ana@example.com", "luis@example.com"]},
    })


def measure(tickets: int, runs: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as scratch:
        engine = db.make_engine(f"sqlite:///{Path(scratch) / 'bench.db'}")
        db.upgrade(engine)
        sessions = db.session_factory(engine)
        settings = Settings(config=_config(), path=Path(scratch) / "config.toml",
                            secrets=Secrets(imap_password=None, smtp_password=None,
                                            agent_secret=SecretStr("bench")))
        parts = assemble(settings, engine, sessions)
        problems = parts.ingestor.agent_replies.problems
        now = datetime.now(UTC).replace(tzinfo=None)
        with sessions.begin() as session:
            rows = [Ticket(status=TicketStatus.OPEN, customer_email=f"c{n}@example.net",
                           customer_name=f"Cliente {n}", subject=f"Pedido {10000 + n} sin llegar",
                           language=LANGUAGES[n % 3], created_at=now, updated_at=now,
                           last_outbound_at=now) for n in range(tickets)]
            session.add_all(rows)
            session.flush()
            session.add_all(Message(ticket_id=t.id, direction=Direction.IN,
                                    message_id=f"first-{t.id}@example.net",
                                    from_email=t.customer_email, subject=t.subject,
                                    text="¿Dónde está mi pedido?", created_at=now) for t in rows)
        started = time.perf_counter()
        with sessions.begin() as session:
            linked = list(session.query(Ticket).order_by(Ticket.id))
            problems.link(session, "huelga-transporte", linked, agent="ana@example.com",
                          title="Huelga de transportes")
        link_seconds = time.perf_counter() - started
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            with sessions.begin() as session:
                problem = session.query(Problem).one()
                done = problems.reply(session, problem, REPLY, agent="ana@example.com",
                                      agent_name="Ana")
            timings.append(time.perf_counter() - started)
            assert len(done.sent) == tickets and not done.errors
            print(f"broadcast to {tickets} tickets queued and committed in {timings[-1]:.2f} s")
        engine.dispose()
    return {"tickets": tickets, "runs": timings, "median_seconds": statistics.median(timings),
            "link_seconds": link_seconds, "database": "sqlite",
            "python": platform.python_version(), "machine": platform.processor() or platform.machine(),
            "date": datetime.now(UTC).date().isoformat()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args()
    result = measure(args.tickets, args.runs)
    args.out.mkdir(parents=True, exist_ok=True)
    target = args.out / f"{result['date']}-problem-broadcast.json"
    target.write_text(json.dumps(result, indent=2) + "\n")
    print(f"median {result['median_seconds']:.2f} s for {args.tickets} tickets "
          f"(linking them: {result['link_seconds']:.2f} s); written to {target}")


if __name__ == "__main__":
    main()

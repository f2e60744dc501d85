"""What the customer's own words decide: self-help answers in the acknowledgement, the close when
they reply that it is solved, and the one thank-you after a satisfaction score.

Everything happens inside the caller's transaction (the router's), so the ticket's change and the
mail it causes commit together. Guarantees: at most two answers are shown, only in the ticket's
language; a ticket is closed as self-solved only if it was offered answers, is not closed, no
agent has answered yet, and the reply says nothing but "solved"; a ticket gets at most one mail
after a score (the marker `satisfaction_thanked_at` is set with it), and a score of 1-3 tells
the agents once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from daemon.config import Config, LiveConfig
from daemon.outbound.compose import Thread
from daemon.outbound.queue import Mailer
from daemon.storage.models import Ticket, TicketStatus
from daemon.tickets import state
from daemon.tickets.discounts import DiscountProvider
from daemon.tickets.self_help import faq_names, is_solved_reply, join_names, match_faq, solved_word

log = logging.getLogger("daemon.feedback")

_HAPPY = 4


class Feedback:
    def __init__(self, config: Config | LiveConfig, mailer: Mailer, discounts: DiscountProvider | None,
                 clock: Callable[[], datetime]) -> None:
        self.live = LiveConfig.of(config)
        self.mailer = mailer
        self.discounts = discounts
        self.clock = clock

    @property
    def config(self) -> Config:
        """The mailbox's settings now (a reload swaps them in the shared LiveConfig)."""
        return self.live.config

    def acknowledgement_help(self, ticket: Ticket, text: str) -> dict[str, Any]:
        """The acknowledgement's `faq` and `solved_word`; records the names shown on the ticket.

        An entry whose answer has no template in the ticket's language is skipped (check-config
        reports it), so the customer never sees an empty answer.
        """
        shown: list[dict[str, Any]] = []
        for match in match_faq(text, ticket.language, self.config.faq):
            answer = self.mailer.renderer.snippet(
                "faq", match.name, ticket.language,
                {"shop": self.mailer.shop_context(),
                 "ticket": {"number": ticket.id, "subject": ticket.subject,
                            "customer_name": ticket.customer_name},
                 "faq": {"name": match.name, "url": match.url}})
            if answer:
                shown.append({"name": match.name, "text": answer, "url": match.url})
        ticket.faq = join_names(entry["name"] for entry in shown)
        if shown:
            log.info("ticket=%d acknowledgement offers %s", ticket.id, ticket.faq)
        return {"faq": shown,
                "solved_word": solved_word(ticket.language, self.config.shop.default_language)}

    def wants_self_solved(self, ticket: Ticket, text: str, sender: str) -> bool:
        """The customer of a ticket offered answers says, and only says, that it is solved, before
        any agent answered (after that, the agent's help may be what solved it: agents close)."""
        return (bool(ticket.faq) and not ticket.self_solved
                and ticket.status != TicketStatus.CLOSED and ticket.first_agent_reply_at is None
                and sender == ticket.customer_email
                and is_solved_reply(text, ticket.customer_name))

    def self_solve(self, session: Session, ticket: Ticket, thread: Thread) -> int:
        """Close as self-solved: one short thank-you (a code only if configured), agents told."""
        now = self.clock()
        discount: dict[str, Any] | None = None
        percent = self.config.closing.discount_percent
        # No provider: codes come from the shop's platform, and a code the shop has not confirmed
        # is never sent — the self-solved thank-you then goes without one.
        if self.discounts is not None and self.config.self_help.discount_on_self_solved and percent > 0:
            issued = self.discounts.issue(session, ticket.id, percent, now).discount
            if issued is not None:
                ticket.discount_code = issued.code
                discount = {"code": issued.code, "percent": issued.percent,
                            "valid_until": issued.valid_until.isoformat(),
                            "terms": self.config.closing.terms.get(ticket.language)}
        state.apply(ticket, state.Event.CLOSED, now)
        ticket.self_solved = True
        queued = int(self.mailer.to_customer(session, ticket, "self_solved", {"discount": discount},
                                             kind="self-solved", thread=thread,
                                             automatic="auto-replied"))
        queued += self.mailer.to_agents(
            session, ticket, "agent_notice",
            {"notice": "self_solved", "details": {"faq": ", ".join(faq_names(ticket.faq))}},
            kind="notice-self_solved", recipients=self.mailer.all_agents())
        log.info("ticket=%d closed as self-solved by the customer (%s)", ticket.id, ticket.faq)
        return queued

    def after_score(self, session: Session, ticket: Ticket, score: int, thread: Thread) -> int:
        """The one mail a score earns: with a `promotion` template in the customer's language,
        4-5 get the promotion and 1-3 a plain thank-you; 1-3 also tell the agents at once."""
        if ticket.satisfaction_thanked_at is not None:
            return 0
        ticket.satisfaction_thanked_at = self.clock()
        queued = 0
        if self.mailer.renderer.has("promotion", ticket.language):
            template = "promotion" if score >= _HAPPY else "satisfaction_thanks"
            queued += int(self.mailer.to_customer(session, ticket, template, {"score": score},
                                                  kind=template.replace("_", "-"), thread=thread,
                                                  automatic="auto-replied"))
        if score < _HAPPY:
            queued += self.mailer.to_agents(
                session, ticket, "agent_notice",
                {"notice": "low_satisfaction", "details": {"score": score}},
                kind="notice-low_satisfaction", recipients=self.mailer.all_agents())
            log.info("ticket=%d scored %d: agents told", ticket.id, score)
        return queued

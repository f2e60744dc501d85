"""Is this message really from an agent? Signed notification ids, or a trusted DKIM/DMARC result.

A From header is easy to forge, so an agent's address alone proves nothing. Each notification
to an agent carries, in its Message-ID, an HMAC over the ticket, the agent and a nonce; a reply
that names such an id and comes from that agent is genuine. Where the shop's own mail server
stamps `Authentication-Results`, a DKIM or DMARC pass for the agent's domain is accepted too.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Collection
from dataclasses import dataclass

from daemon.mail.message import ParsedMessage

ANY_AGENT = "*"
_TOKEN_ID = re.compile(r"^incidencias\.(\d{1,9})\.notify\.([0-9a-f]{16})\.([0-9a-f]{32})@", re.IGNORECASE)
_RESULT = re.compile(r"\b(dkim|dmarc)\s*=\s*(\w+)([^;]*)", re.IGNORECASE)
_PROPERTY = re.compile(r"\bheader\.(d|from)\s*=\s*\"?([^\s;\"]+)", re.IGNORECASE)


def _mac(secret: bytes, ticket: int, agent: str, nonce: str) -> str:
    data = f"{ticket}|{agent.lower()}|{nonce}".encode()
    return hmac.new(secret, data, hashlib.sha256).hexdigest()[:32]


def notification_id(secret: bytes, ticket: int, agent: str, domain: str) -> str:
    """A Message-ID that proves, when replied to by `agent`, that the reply answers ticket N."""
    nonce = secrets.token_hex(8)
    return f"incidencias.{ticket}.notify.{nonce}.{_mac(secret, ticket, agent, nonce)}@{domain}"


@dataclass(frozen=True)
class AgentCheck:
    """The verdict on a message whose sender is an agent address."""

    ticket: int | None
    verified: bool
    via: str


def verify_token(secret: bytes, message: ParsedMessage) -> AgentCheck:
    """The ticket of the first notification id in the thread signed for this sender (or for all)."""
    sender = message.sender.email
    seen_token = False
    for mid in message.thread_ids:
        found = _TOKEN_ID.match(mid)
        if not found:
            continue
        seen_token = True
        ticket, nonce, mac = int(found.group(1)), found.group(2).lower(), found.group(3).lower()
        for agent in (sender, ANY_AGENT):
            if hmac.compare_digest(mac, _mac(secret, ticket, agent, nonce)):
                return AgentCheck(ticket, True, "token")
    reason = "token not valid for this agent or ticket" if seen_token else "no notification token"
    return AgentCheck(None, False, reason)


def authenticated_domain(message: ParsedMessage, authserv_id: str) -> str | None:
    """The domain that passed DKIM or DMARC per the first Authentication-Results from our server."""
    for name, value in message.headers:
        if name.lower() != "authentication-results":
            continue
        server, _, results = value.partition(";")
        if server.strip().split()[0:1] != [authserv_id]:
            continue
        for method in results.split(";"):
            result = _RESULT.search(method)
            prop = _PROPERTY.search(method)
            if result and prop and result.group(2).lower() == "pass":
                return prop.group(2).lower()
        return None
    return None


def check_agent(message: ParsedMessage, agents: Collection[str], secret: bytes,
                authserv_id: str | None) -> AgentCheck | None:
    """None when the sender is not an agent address; else whether the claim holds up."""
    sender = message.sender.email
    if sender not in agents:
        return None
    by_token = verify_token(secret, message)
    if by_token.verified:
        return by_token
    if authserv_id and authenticated_domain(message, authserv_id) == sender.rpartition("@")[2]:
        return AgentCheck(None, True, "authentication-results")
    return by_token

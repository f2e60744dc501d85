"""One person's data as a zip (GDPR art. 15): tickets as JSON, their mails as .eml, attachments.

What goes in: every ticket where the address is the customer or a participant, with all its
messages' full texts (other participants' messages included: the ticket necessarily shows them),
internal notes included (they are data about the person, and art. 15 has no exception for
"internal"), promises made to them, discount codes and satisfaction. Raw mails and attachments
only of the person's own messages and of our mail to them; other people's raw mails and
attachments never. Agents' own addresses are replaced by "agent": they are not the person's data.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from daemon.storage.models import (
    Direction,
    DiscountCode,
    Message,
    OutboxItem,
    OutboxStatus,
    Participant,
    Promise,
    RawMessage,
    Ticket,
)
from daemon.storage.views import iso, message_object, ticket_object
from daemon.tickets.privacy.holdings import Holdings

_SAFE = re.compile(r"[^A-Za-z0-9._-]+")

README = {
    "es": """Datos personales de {address}, exportados por {shop} el {date} (UTC).

tickets.json       todas las incidencias en las que participa esta dirección: sus datos, cada
                   mensaje con su texto completo (también notas internas del equipo), códigos de
                   descuento y valoración.
received/*.eml     los correos que usted nos envió, tal como los recibimos.
sent/*.eml         los correos que le enviamos, tal como salieron.
attachments/       los ficheros adjuntos de esos correos (el nombre empieza por el número del
                   mensaje en tickets.json).
""",
    "fr": """Données personnelles de {address}, exportées par {shop} le {date} (UTC).

tickets.json       toutes les demandes où figure cette adresse : leurs données, chaque message
                   avec son texte complet (notes internes de l'équipe comprises), codes de
                   réduction et note de satisfaction.
received/*.eml     les courriels que vous nous avez envoyés, tels que reçus.
sent/*.eml         les courriels que nous vous avons envoyés, tels qu'expédiés.
attachments/       les pièces jointes de ces courriels (le nom commence par le numéro du message
                   dans tickets.json).
""",
    "en": """Personal data of {address}, exported by {shop} on {date} (UTC).

tickets.json       every ticket this address takes part in: its details, each message with its
                   full text (the team's internal notes included), discount codes and the
                   satisfaction score.
received/*.eml     the emails you sent us, as we received them.
sent/*.eml         the emails we sent you, as they went out.
attachments/       the files attached to those emails (each name starts with the message's
                   number in tickets.json).
""",
}


def build_export(session: Session, found: Holdings, shop: str, language: str,
                 now: datetime) -> bytes:
    """The zip's bytes; `language` picks the README (es, fr, en; English otherwise)."""
    buffer = io.BytesIO()
    own = set(found.own_messages)
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        tickets = []
        for ticket_id in found.tickets:
            ticket = session.get_one(Ticket, ticket_id)
            theirs = ticket_id in found.customer_tickets
            tickets.append(_ticket(session, ticket, own, theirs, archive))
        for raw in session.scalars(select(RawMessage).where(RawMessage.id.in_(found.own_raw),
                                                            RawMessage.erased_at.is_(None))):
            archive.writestr(f"received/{raw.id}.eml", raw.raw)
        for item in session.scalars(select(OutboxItem).where(OutboxItem.id.in_(found.outbox),
                                                             OutboxItem.status == OutboxStatus.SENT)):
            if found.address in item.recipients.lower().split("\n") and item.raw:
                archive.writestr(f"sent/{item.id}.eml", item.raw)
        document = {"address": found.address, "exported_at": iso(now), "tickets": tickets}
        archive.writestr("tickets.json", json.dumps(document, ensure_ascii=False, indent=2))
        text = README.get(language, README["en"])
        archive.writestr("README.txt", text.format(address=found.address, shop=shop,
                                                   date=now.strftime("%Y-%m-%d %H:%M")))
    return buffer.getvalue()


def _ticket(session: Session, ticket: Ticket, own: set[int], theirs: bool,
            archive: zipfile.ZipFile) -> dict[str, Any]:
    found = ticket_object(ticket, len(ticket.messages))
    found["participants"] = sorted(session.scalars(
        select(Participant.email).where(Participant.ticket_id == ticket.id)))
    found["closed_at"] = iso(ticket.closed_at)
    found["satisfaction"] = ticket.satisfaction
    found["discount_codes"] = [
        {"code": d.code, "percent": d.percent, "valid_until": iso(d.valid_until)}
        for d in session.scalars(select(DiscountCode).where(DiscountCode.ticket_id == ticket.id))]
    found["promises"] = [
        {"text": p.text, "due_at": iso(p.due_at), "done_at": iso(p.done_at)}
        for p in session.scalars(select(Promise).where(Promise.ticket_id == ticket.id))]
    found.pop("assigned_to", None)
    # Files of their own messages, and on their tickets of ours to them; never someone else's.
    found["messages"] = [_message(m, m.id in own or (theirs and m.direction != Direction.IN), archive)
                         for m in ticket.messages]
    return found


def _message(message: Message, with_files: bool, archive: zipfile.ZipFile) -> dict[str, Any]:
    found = message_object(message)
    found["number"] = message.id
    found["full_text"] = message.full_text
    found["to"], found["cc"] = message.to, message.cc
    if message.direction in (Direction.AGENT, Direction.NOTE):
        found["from"] = "agent"
    if not with_files:
        found["attachments"] = []
        return found
    for attachment, entry in zip(message.attachments, found["attachments"], strict=True):
        name = f"attachments/{message.id}-{attachment.id}-{_SAFE.sub('_', attachment.filename)}"
        archive.writestr(name, attachment.content)
        entry["file"] = name
    return found


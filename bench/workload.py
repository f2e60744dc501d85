"""The seeded, reproducible mix of customer mail every system in the bench receives.

A quarter of the messages open conversations, each from a distinct customer; the rest are replies
to a conversation already started: half carry In-Reply-To/References, 30 % are Outlook-style
(`RE: [#N] …` with Thread-Index but no In-Reply-To/References) and 20 % only repeat the subject
with `Re:` (a webmail that drops the headers). One in ten messages carries a 200 KB JPEG or PDF,
about one in seven is HTML-only, and replies quote the history in the customer's language.

Each system gets the same bytes except the subject tag of Outlook-style replies, written in
that system's own format (`[#N]`, `[issueN]`, `[queue-N]`) and naming the ticket that system
opened for the conversation's first message — what its acknowledgement taught the customer's
mail client. For incidencias that is the order in which conversations start (a fresh database
numbers them so when every reply is threaded right, which the bench checks). A peer that opens
extra tickets for misthreaded replies numbers differently, so peers get a placeholder
(`placeholder_tag`) that their driver replaces, message by message, with its own number.

Only the standard library is used, so peer virtual environments can import this module too.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.utils import format_datetime

SHOP_ADDRESS = "incidencias@example.com"
ATTACHMENT_SIZE = 200 * 1024
NEW_SHARE = 0.25
HEADER_REPLY_SHARE = 0.5
OUTLOOK_REPLY_SHARE = 0.3
ATTACHMENT_SHARE = 0.10
HTML_ONLY_SHARE = 0.15
_START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone(timedelta(hours=1)))

TagFormat = Callable[[int], str]


def incidencias_tag(number: int) -> str:
    return f"[#{number}]"


PLACEHOLDER = re.compile(rb"\{\{conversation (\d+)\}\}")


def placeholder_tag(number: int) -> str:
    """Stands for "the tag of the ticket this system opened for conversation number - 1"."""
    return f"{{{{conversation {number - 1}}}}}"


def resolve_placeholder(raw: bytes, tag_of: Callable[[int], str]) -> bytes:
    """Replace the placeholder with `tag_of(conversation)` (an empty tag leaves none)."""
    return PLACEHOLDER.sub(lambda m: tag_of(int(m.group(1))).encode(), raw)


@dataclass(frozen=True)
class Mail:
    """One generated message and its ground truth."""

    index: int
    conversation: int  # 0-based, in order of first message: ticket number - 1 on a fresh system
    kind: str  # "new", "reply-headers", "reply-outlook", "reply-subject"
    message_id: str  # without angle brackets
    language: str
    html_only: bool
    attachment: str | None  # "jpeg", "pdf" or None
    raw: bytes

    @property
    def is_reply(self) -> bool:
        return self.kind != "new"


@dataclass
class Workload:
    seed: int
    mails: list[Mail] = field(default_factory=list)

    @property
    def raws(self) -> list[bytes]:
        return [m.raw for m in self.mails]

    @property
    def conversations(self) -> int:
        return sum(1 for m in self.mails if not m.is_reply)

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for mail in self.mails:
            found[mail.kind] = found.get(mail.kind, 0) + 1
        found["html_only"] = sum(m.html_only for m in self.mails)
        found["attachments"] = sum(m.attachment is not None for m in self.mails)
        for language in ("es", "fr", "en"):
            found[f"lang_{language}"] = sum(m.language == language for m in self.mails)
        return found

    def manifest(self) -> list[dict[str, int | bool | str]]:
        """What a peer driver needs to resolve placeholders: order, conversation, opens it."""
        return [{"index": m.index, "conversation": m.conversation, "new": not m.is_reply,
                 "message_id": f"<{m.message_id}>"} for m in self.mails]

    def expected_threading(self) -> dict[str, str]:
        """Each reply's Message-ID → the Message-ID of the message that opened its conversation."""
        first = {m.conversation: m.message_id for m in self.mails if not m.is_reply}
        return {m.message_id: first[m.conversation] for m in self.mails if m.is_reply}


def threading_correctness(workload: Workload, ticket_of: dict[str, str | int | None]) -> float:
    """Share of replies the system put on the ticket its conversation's first message opened."""
    expected = workload.expected_threading()
    if not expected:
        return 1.0
    right = sum(1 for reply, first in expected.items()
                if ticket_of.get(reply) is not None and ticket_of.get(reply) == ticket_of.get(first))
    return right / len(expected)


@dataclass
class _Conversation:
    number: int
    language: str
    name: str
    email: str
    subject: str
    history: list[tuple[str, str, str]] = field(default_factory=list)  # (message_id, date, text)


_NAMES = {
    "es": ["María García", "José Martínez", "Lucía Fernández", "Javier López", "Carmen Sánchez",
           "Antonio Pérez", "Elena Gómez", "Manuel Díaz", "Sofía Romero", "Pablo Navarro"],
    "fr": ["Camille Dubois", "Léa Moreau", "Hugo Laurent", "Chloé Lefèvre", "Louis Girard",
           "Manon Roux", "Théo Fournier", "Inès Mercier"],
    "en": ["Emily Clarke", "James Turner", "Olivia Hughes", "Harry Walsh", "Grace Bennett",
           "Jack Murphy", "Amelia Price", "George Ellis"],
}
_DOMAINS = {"es": ["correo.example.es", "example.net"], "fr": ["courriel.example.fr", "example.net"],
            "en": ["mail.example.co.uk", "example.org"]}
_SUBJECTS = {
    "es": ["Pedido {order} no recibido", "Producto dañado en el pedido {order}",
           "Talla equivocada", "Devolución del pedido {order}", "Factura del pedido {order}",
           "Problema con mi pedido", "Cambio de dirección de envío {order}"],
    "fr": ["Commande {order} non reçue", "Article endommagé, commande {order}",
           "Mauvaise taille", "Retour de la commande {order}", "Facture de la commande {order}",
           "Problème avec ma commande"],
    "en": ["Order {order} not received", "Damaged item in order {order}", "Wrong size",
           "Return for order {order}", "Invoice for order {order}", "Problem with my order"],
}
_SENTENCES = {
    "es": ["Hola, les escribo porque hice un pedido hace dos semanas y todavía no ha llegado.",
           "El seguimiento del transportista no se actualiza desde el martes.",
           "La caja llegó aplastada y uno de los platos está roto.",
           "Pedí una talla M pero me enviaron una L.",
           "Necesito la factura a nombre de mi empresa para poder deducirla.",
           "¿Podrían decirme cuándo lo recibiré? Es un regalo de cumpleaños.",
           "Adjunto una foto para que vean cómo llegó el paquete.",
           "Me gustaría devolverlo y que me reembolsen el importe.",
           "He cambiado de domicilio y quisiera que lo envíen a la nueva dirección.",
           "Gracias por su atención, quedo a la espera de su respuesta."],
    "fr": ["Bonjour, j'ai passé une commande il y a deux semaines et je ne l'ai toujours pas reçue.",
           "Le suivi du transporteur n'a pas bougé depuis mardi.",
           "Le carton est arrivé écrasé et une des assiettes est cassée.",
           "J'ai commandé une taille M mais j'ai reçu un L.",
           "Pourriez-vous m'envoyer la facture au nom de ma société ?",
           "Pouvez-vous me dire quand je vais la recevoir ? C'est un cadeau.",
           "Je joins une photo du colis tel qu'il est arrivé.",
           "Je souhaite le retourner et être remboursée.",
           "Merci d'avance pour votre aide, j'attends votre réponse."],
    "en": ["Hello, I placed an order two weeks ago and it still has not arrived.",
           "The courier's tracking page has not changed since Tuesday.",
           "The box arrived crushed and one of the plates is broken.",
           "I ordered a medium but received a large.",
           "Could you send me the invoice in my company's name, please?",
           "Can you tell me when it will be delivered? It is a birthday present.",
           "I am attaching a photo of the parcel as it arrived.",
           "I would like to return it and get a refund.",
           "Thank you for your help, I look forward to hearing from you."],
}
_FOLLOW_UPS = {
    "es": ["Sigo sin noticias, ¿pueden revisarlo?", "Les envío más información sobre el pedido.",
           "Perdón, olvidé indicar el número de pedido.", "¿Hay alguna novedad?"],
    "fr": ["Toujours pas de nouvelles, pouvez-vous vérifier ?", "Voici plus d'informations.",
           "Désolée, j'ai oublié le numéro de commande.", "Y a-t-il du nouveau ?"],
    "en": ["Still no news, could you check?", "Here is some more information about the order.",
           "Sorry, I forgot to give the order number.", "Any news on this?"],
}
_ATTRIBUTION = {
    "es": "El {date}, {name} <{email}> escribió:",
    "fr": "Le {date}, {name} <{email}> a écrit :",
    "en": "On {date}, {name} <{email}> wrote:",
}
_REPLY_PREFIX = {"es": "Re:", "fr": "RE :", "en": "Re:"}


def generate(n: int = 1000, seed: int = 1, tag: TagFormat = incidencias_tag) -> Workload:
    """`n` messages; the same `n` and `seed` always give the same bytes (for the same `tag`)."""
    rng = random.Random(seed)
    workload = Workload(seed)
    conversations: list[_Conversation] = []
    new_left = max(1, round(n * NEW_SHARE)) if n else 0
    for index in range(n):
        left = n - index
        opens = not conversations or rng.random() < new_left / left
        if opens and new_left:
            new_left -= 1
            conversation = _new_conversation(rng, len(conversations), seed)
            conversations.append(conversation)
            kind = "new"
        else:
            conversation = rng.choice(conversations)
            roll = rng.random()
            if roll < HEADER_REPLY_SHARE:
                kind = "reply-headers"
            elif roll < HEADER_REPLY_SHARE + OUTLOOK_REPLY_SHARE:
                kind = "reply-outlook"
            else:
                kind = "reply-subject"
        workload.mails.append(_mail(rng, index, seed, conversation, kind, tag))
    return workload


def _new_conversation(rng: random.Random, number: int, seed: int) -> _Conversation:
    language = rng.choices(["es", "fr", "en"], weights=[2, 1, 1])[0]
    name = rng.choice(_NAMES[language])
    local = name.split()[0].lower().translate(str.maketrans("áéíóúñèçï", "aeiouneci"))
    email = f"{local}.{seed}.{number}@{rng.choice(_DOMAINS[language])}"
    template = rng.choice(_SUBJECTS[language])
    subject = template.format(order=rng.randint(10000, 99999))
    return _Conversation(number, language, name, email, subject)


def _mail(rng: random.Random, index: int, seed: int, conversation: _Conversation, kind: str,
          tag: TagFormat) -> Mail:
    language = conversation.language
    date = _START + timedelta(minutes=index)
    digest = hashlib.sha256(f"{seed}:{index}".encode()).hexdigest()[:16]
    message_id = f"{digest}.{index}@{conversation.email.rpartition('@')[2]}"
    if kind == "new":
        text = " ".join(rng.sample(_SENTENCES[language], 3))
    else:
        text = rng.choice(_FOLLOW_UPS[language]) + " " + rng.choice(_SENTENCES[language])
    text = f"{text}\n\n{conversation.name.split()[0]}"
    quoted = _quoted(conversation) if kind != "new" else ""
    html_only = rng.random() < HTML_ONLY_SHARE
    attachment = rng.choice(["jpeg", "pdf"]) if rng.random() < ATTACHMENT_SHARE else None

    msg = EmailMessage()
    msg["From"] = f"{conversation.name} <{conversation.email}>"
    msg["To"] = SHOP_ADDRESS
    msg["Subject"] = _subject(conversation, kind, tag)
    msg["Date"] = format_datetime(date)
    msg["Message-ID"] = f"<{message_id}>"
    if kind == "reply-headers" and conversation.history:
        msg["In-Reply-To"] = f"<{conversation.history[-1][0]}>"
        msg["References"] = " ".join(f"<{mid}>" for mid, _, _ in conversation.history)
    if kind == "reply-outlook":
        msg["Thread-Topic"] = conversation.subject
        msg["Thread-Index"] = "AQHZ" + hashlib.sha256(conversation.email.encode()).hexdigest()[:24]
    msg["Content-Language"] = {"es": "es-ES", "fr": "fr-FR", "en": "en-GB"}[language]
    if html_only:
        msg.set_content(_html(text, quoted), subtype="html")
    else:
        msg.set_content(text + ("\n\n" + quoted if quoted else ""))
    if attachment is not None:
        payload, maintype, subtype, filename = _attachment(rng, attachment, index)
        msg.add_attachment(payload, maintype=maintype, subtype=subtype, filename=filename)
        msg.set_boundary(f"=_{digest}")  # the stdlib would draw a random one
    conversation.history.append((message_id, format_datetime(date), text))
    return Mail(index, conversation.number, kind, message_id, language, html_only, attachment,
                msg.as_bytes())


def _subject(conversation: _Conversation, kind: str, tag: TagFormat) -> str:
    if kind == "new":
        return conversation.subject
    if kind == "reply-outlook":
        return f"RE: {tag(conversation.number + 1)} {conversation.subject}"
    return f"{_REPLY_PREFIX[conversation.language]} {conversation.subject}"


def _quoted(conversation: _Conversation) -> str:
    """The previous message quoted under an attribution line, as mail clients write it."""
    _mid, date, text = conversation.history[-1]
    header = _ATTRIBUTION[conversation.language].format(date=date, name=conversation.name,
                                                         email=conversation.email)
    return header + "\n" + "\n".join(f"> {line}" if line else ">" for line in text.splitlines())


def _html(text: str, quoted: str) -> str:
    paragraphs = "".join(f"<p>{line}</p>" for line in text.split("\n") if line)
    body = f"<div dir=\"ltr\">{paragraphs}</div>"
    if quoted:
        head, _, rest = quoted.partition("\n")
        inner = "<br>".join(line.lstrip("> ") for line in rest.splitlines())
        body += f"<div class=\"gmail_quote\">{head}<blockquote>{inner}</blockquote></div>"
    return f"<html><body>{body}</body></html>"


def _attachment(rng: random.Random, kind: str, index: int) -> tuple[bytes, str, str, str]:
    """A 200 KB file shaped like a JPEG or a PDF (random content; no system looks inside)."""
    if kind == "jpeg":
        body = rng.randbytes(ATTACHMENT_SIZE - 24)
        payload = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00" + body + b"\xff\xd9"
        return payload, "image", "jpeg", f"foto_{index}.jpg"
    stream = rng.randbytes(ATTACHMENT_SIZE - 200)
    payload = (b"%PDF-1.4\n1 0 obj\n<< /Length " + str(len(stream)).encode() + b" >>\nstream\n"
               + stream + b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n")
    return payload, "application", "pdf", f"factura_{index}.pdf"

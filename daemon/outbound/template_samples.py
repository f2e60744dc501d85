"""Realistic sample contexts for every template: the template checker, the tests and previews use them.

Each name has a full variant (every optional value present) and a sparse one (optional values
None, empty subject and name), so checking a template exercises both sides of its conditionals.
A template whose text depends on a kind of event (`agent_notice`) has further full variants, one
per kind, between the two.
The keys here are the contract documented in templates/CONTEXT.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

CUSTOMER_TEMPLATES: tuple[str, ...] = (
    "acknowledgement",
    "agent_reply",
    "update",
    "waiting_reminder",
    "closing",
    "reopened",
    "self_solved",
    "satisfaction_thanks",
)
#: Templates a shop may add; none is built in (`promotion`: the thank-you to a satisfied customer).
OPTIONAL_TEMPLATES: tuple[str, ...] = ("promotion",)
AGENT_TEMPLATES: tuple[str, ...] = (
    "agent_new_ticket",
    "agent_followup",
    "agent_command_error",
    "agent_reminder",
    "agent_digest",
    "agent_forged_warning",
    "agent_bounce",
    "agent_copy",
    "agent_help",
    "agent_notice",
    "agent_answers",
    "agent_problem",
)


def sample_context(name: str) -> dict[str, Any]:
    """Full sample data for template `name`; KeyError for an unknown name."""
    return _FULL[name]()


def sample_variants(name: str) -> list[dict[str, Any]]:
    """The full sample, any further full ones, then a sparse one with every optional value absent."""
    return [sample_context(name), *(make() for make in _MORE.get(name, ())), _sparse(name)]


def answer_context() -> dict[str, Any]:
    """Full sample data for a quick answer (`<lang>/answers/<name>.j2`)."""
    return {
        "shop": _shop(),
        "ticket": _customer_ticket(),
        "agent_name": "Lucía",
        "status_line": "Estamos esperando la respuesta de la empresa de transporte.",
        "promised_date": "2026-11-25",
    }


def answer_variants() -> list[dict[str, Any]]:
    """The full answer sample, then a sparse one: no name, subject, status line, date or contacts."""
    sparse = {**answer_context(), "shop": _bare_shop(), "agent_name": "", "status_line": None,
              "promised_date": None}
    sparse["ticket"] = {**sparse["ticket"], "subject": "", "customer_name": ""}
    return [answer_context(), sparse]


def _shop() -> dict[str, Any]:
    return {
        "name": "Tienda Ejemplo",
        "address": "incidencias@example.com",
        "phone": "+34 910 000 000",
        "web": "https://tienda.example.com",
        "signature": "Lucía y el equipo de Tienda Ejemplo",
    }


def _bare_shop() -> dict[str, Any]:
    return {**_shop(), "phone": None, "web": None, "signature": None}


def _customer_ticket() -> dict[str, Any]:
    return {"number": 1042, "subject": "Pedido 58213 sin llegar", "customer_name": "María García"}


def _agent_ticket() -> dict[str, Any]:
    return {
        **_customer_ticket(),
        "status": "open",
        "language": "es",
        "created_at": "2026-11-18 10:24",
        "age_days": 3,
        "last_contact": "2026-11-19 16:02",
        "message_count": 4,
        "orders": [
            {"number": "58213", "answered": True, "found": True, "status": "processing",
             "date": "2026-11-16T18:40:11", "total": "54.85 EUR",
             "items": [{"name": "Camiseta azul - M", "quantity": 2}, {"name": "Gorra roja", "quantity": 1}],
             "shipping": "Envío urgente", "tracking": ["Correos PK123456789ES"]},
            {"number": "58240", "answered": True, "found": False, "status": None, "date": None,
             "total": None, "items": [], "shipping": None, "tracking": []},
            {"number": "58301", "answered": False, "found": False, "status": None, "date": None,
             "total": None, "items": [], "shipping": None, "tracking": []},
        ],
        "closing_pending": {"code": "GRACIAS-7KQ2M9XW4P", "percent": 10,
                            "last_error": "the shop answered HTTP 503"},
    }


def _customer() -> dict[str, Any]:
    return {"name": "María García", "email": "maria.garcia@example.net"}


_COMMANDS = ["#close", "#close 15", "#note", "#wait"]
_CUSTOMER_TEXT = (
    "Hola, hice el pedido 58213 hace diez días y el seguimiento no se mueve desde el martes.\n"
    "¿Me podéis decir qué pasa? Lo necesito para un regalo.\n\n"
    "Gracias, María"
)
_AGENT_TEXT = (
    "Hola María:\n\n"
    "He hablado con la empresa de transporte: tu paquete se quedó retenido en el centro de "
    "Zaragoza y sale hoy mismo. Puedes seguirlo aquí: https://tracking.example.com/58213\n\n"
    "Si prefieres que te lo enviemos de nuevo por mensajería urgente, dímelo y lo preparo."
)
_HELP_COMMANDS = [
    "#close — cierra la incidencia y envía al cliente la despedida con un código de descuento",
    "#close 15 — igual, con un 15 % de descuento",
    "#note — el mensaje queda como nota interna; el cliente no lo ve",
    "#wait 2d — no te recordamos la incidencia hasta dentro de 2 días",
    "#help — este mensaje",
]


def _acknowledgement() -> dict[str, Any]:
    return {"shop": _shop(), "ticket": _customer_ticket(), "update_days": 3,
            "faq": [{"name": "retraso", "url": "https://tienda.example.com/ayuda/envios",
                     "text": "Los pedidos tardan de 2 a 5 días laborables. Con el número de "
                             "seguimiento de tu correo de envío puedes ver dónde está el paquete."}],
            "solved_word": "RESUELTO"}


def faq_sample() -> dict[str, Any]:
    """What a `<lang>/faq/<name>.j2` answer is rendered with."""
    return {"shop": _shop(), "ticket": _customer_ticket(),
            "faq": {"name": "retraso", "url": "https://tienda.example.com/ayuda/envios"}}


def _self_solved() -> dict[str, Any]:
    return {"shop": _shop(), "ticket": _customer_ticket(), "discount": _closing()["discount"]}


def _satisfaction_thanks() -> dict[str, Any]:
    return {"shop": _shop(), "ticket": _customer_ticket(), "score": 2}


def _promotion() -> dict[str, Any]:
    return {"shop": _shop(), "ticket": _customer_ticket(), "score": 5}


def _happy_thanks() -> dict[str, Any]:
    return {**_satisfaction_thanks(), "score": 5}


def _self_solved_notice() -> dict[str, Any]:
    closed = {**_agent_ticket(), "status": "closed"}
    return {**_notice("self_solved", {"faq": "retraso"}), "ticket": closed}


def _low_satisfaction_notice() -> dict[str, Any]:
    closed = {**_agent_ticket(), "status": "closed"}
    return {**_notice("low_satisfaction", {"score": 2}), "ticket": closed}


def _agent_reply() -> dict[str, Any]:
    return {
        "shop": _shop(),
        "ticket": _customer_ticket(),
        "agent_name": "Lucía",
        "text": _AGENT_TEXT,
        "greeting": False,
    }


def _quick_answer_reply() -> dict[str, Any]:
    # a reply made of quick answers only: the template adds the greeting and the sign-off
    text = ("Tu pedido va con retraso y sentimos de verdad la espera. Ya hemos pedido a la empresa "
            "de transporte que localice el paquete.")
    return {**_agent_reply(), "text": text, "greeting": True}


def _update() -> dict[str, Any]:
    return {
        "shop": _shop(),
        "ticket": _customer_ticket(),
        "status_line": "Estamos esperando la respuesta de la empresa de transporte.",
        "update_days": 3,
    }


def _waiting_reminder() -> dict[str, Any]:
    return {
        "shop": _shop(),
        "ticket": _customer_ticket(),
        "last_request": "¿Nos puedes enviar una foto de la etiqueta del paquete?",
        "waiting_days": 4,
        "close_in_days": 10,
    }


def _closing() -> dict[str, Any]:
    return {
        "shop": _shop(),
        "ticket": _customer_ticket(),
        "personal_line": "Nos alegra que el regalo llegara a tiempo.",
        "discount": {
            "code": "GRACIAS-7KQ2M",
            "percent": 10,
            "valid_until": "2027-02-28",
            "terms": "Válido para un solo pedido en tienda.example.com.",
        },
    }


def _reopened() -> dict[str, Any]:
    return {"shop": _shop(), "ticket": _customer_ticket(), "update_days": 3}


def _agent_new_ticket() -> dict[str, Any]:
    return {
        "shop": _shop(),
        "ticket": {**_agent_ticket(), "message_count": 1, "last_contact": None, "age_days": 0},
        "customer": _customer(),
        "text": _CUSTOMER_TEXT,
        "attachments": [{"filename": "seguimiento.png", "size": 184_320}],
        "commands": list(_COMMANDS),
        "problems": [{"name": "huelga-transporte", "title": "Huelga de transportes",
                      "matched": ["huelga"], "command": "#problem huelga-transporte"}],
    }


def _agent_followup() -> dict[str, Any]:
    return {
        "shop": _shop(),
        "ticket": _agent_ticket(),
        "customer": _customer(),
        "text": "Os adjunto la foto de la etiqueta. ¿Sabéis ya algo?",
        "attachments": [{"filename": "etiqueta.jpg", "size": 2_411_724}],
        "commands": list(_COMMANDS),
        "reopened": True,
    }


def _agent_command_error() -> dict[str, Any]:
    return {
        "shop": _shop(),
        "ticket": _agent_ticket(),
        "errors": [{"line": "#close 150", "message": "discount must be between 0 and 50"}],
        "delivered": False,
        "commands": list(_COMMANDS),
    }


def _agent_reminder() -> dict[str, Any]:
    return {
        "shop": _shop(),
        "ticket": _agent_ticket(),
        "customer": _customer(),
        "waiting_days": 2,
        "last_text": "¿Sabéis ya algo de mi pedido?",
        "commands": list(_COMMANDS),
    }


def _agent_digest() -> dict[str, Any]:
    return {
        "shop": _shop(),
        "date": "2026-11-21",
        "tickets": [
            {
                "number": 1042,
                "subject": "Pedido 58213 sin llegar",
                "status": "open",
                "customer": "maria.garcia@example.net",
                "age_days": 3,
                "idle_days": 2,
            },
            {
                "number": 1039,
                "subject": "Talla equivocada",
                "status": "waiting",
                "customer": "jdupont@example.fr",
                "age_days": 6,
                "idle_days": 4,
            },
        ],
        "opened": 3,
        "closed": 5,
        "open": 1,
        "waiting": 1,
        "overdue_updates": 2,
        "promises_due": [
            {
                "number": 1042,
                "promise": "Llamar a la transportista y confirmar la entrega",
                "agent": "lucia@example.com",
                "due": "2026-11-21 17:00",
            },
            {
                "number": 1039,
                "promise": "Enviar la talla M en cuanto llegue al almacén",
                "agent": "ana@example.com",
                "due": "2026-11-22 09:00",
            },
        ],
        "first_response_hours": 5.4,
    }


def _agent_forged_warning() -> dict[str, Any]:
    return {
        "shop": _shop(),
        "ticket": _agent_ticket(),
        "sender": "Ana <ana@example.com>",
        "subject": "Re: [#1042] Pedido 58213 sin llegar",
        "received_at": "2026-11-21 09:12",
        "reason": "the reply carries no valid agent token",
        "text": "Te devolvemos el importe completo, por favor confirma tu IBAN.",
    }


def _agent_bounce() -> dict[str, Any]:
    return {
        "shop": _shop(),
        "ticket": _agent_ticket(),
        "customer": _customer(),
        "recipient": "maria.garcia@example.net",
        "reason": "550 5.1.1 <maria.garcia@example.net>: Recipient address rejected: User unknown",
        "bounced_subject": "Re: [#1042] Pedido 58213 sin llegar",
    }


def _agent_copy() -> dict[str, Any]:
    return {
        "shop": _shop(),
        "ticket": _agent_ticket(),
        "customer": _customer(),
        "agent_name": "Lucía",
        "agent_email": "lucia@example.com",
        "kind": "reply",
        "text": _AGENT_TEXT,
        "attachments": [{"filename": "justificante-envio.pdf", "size": 48_213}],
        "commands": list(_COMMANDS),
    }


def _agent_help() -> dict[str, Any]:
    return {"shop": _shop(), "ticket": _agent_ticket(), "commands": list(_HELP_COMMANDS)}


def _agent_answers() -> dict[str, Any]:
    return {
        "shop": _shop(),
        "ticket": _agent_ticket(),
        "commands": list(_COMMANDS),
        "answers": [
            {"name": "delay", "languages": ["en", "es", "fr"],
             "first_line": "Tu pedido va un poco más lento de lo previsto, pero está en camino."},
            {"name": "invoice", "languages": ["es"],
             "first_line": "Te adjuntamos la factura de tu pedido."},
        ],
    }


def _agent_notice() -> dict[str, Any]:
    return _notice(
        "promise_due",
        {
            "promise": "Llamar a la transportista y confirmar la entrega",
            "agent": "lucia@example.com",
            "due": "2026-11-21 17:00",
        },
    )


def _notice(notice: str, details: dict[str, Any]) -> dict[str, Any]:
    return {
        "shop": _shop(),
        "ticket": _agent_ticket(),
        "commands": list(_COMMANDS),
        "notice": notice,
        "details": details,
    }


def _promise_overdue_notice() -> dict[str, Any]:
    return {**_agent_notice(), "notice": "promise_overdue"}


def _discount_problem_notice() -> dict[str, Any]:
    closed = {**_agent_ticket(), "status": "closed"}
    problem = "the discount pool has no code for 15% (3 of other values left)"
    return {**_notice("discount_problem", {"problem": problem, "remaining": 3}), "ticket": closed}


def _discount_problem_uncounted_notice() -> dict[str, Any]:
    context = _discount_problem_notice()
    context["details"] = {"problem": "the shop's discount API did not answer", "remaining": None}
    return context


def _pool_low_notice() -> dict[str, Any]:
    return {**_notice("pool_low", {"remaining": 4}), "ticket": {**_agent_ticket(), "status": "closed"}}


def _closing_waits_notice() -> dict[str, Any]:
    return _notice("closing_waits", {"code": "GRACIAS-7KQ2M9XW4P",
                                     "problem": "WooCommerce coupon GRACIAS-7KQ2M9XW4P: the shop "
                                                "answered HTTP 503"})


def _unknown_notice() -> dict[str, Any]:
    # not a kind the daemon sends today: templates must still show a kind they do not know
    return _notice("export_failed", {"file": "/var/lib/incidencias/codes.csv", "error": "disk full"})


def _problem_ticket(number: int, email: str, name: str, language: str) -> dict[str, Any]:
    return {"number": number, "customer": email, "customer_name": name, "language": language,
            "status": "open", "subject": "Mi pedido no llega", "code": None}


def _problem() -> dict[str, Any]:
    return {
        "name": "huelga-transporte",
        "title": "Huelga de transportes",
        "status": "open",
        "status_line": "La huelga de transportes retrasa los envíos unos días.",
        "keywords": ["seur", "huelga", "retraso"],
        "tickets": [_problem_ticket(1042, "maria.garcia@example.net", "María García", "es"),
                    _problem_ticket(1043, "claire@example.fr", "Claire Martin", "fr"),
                    _problem_ticket(1044, "john@example.org", "", "en")],
    }


def _agent_problem() -> dict[str, Any]:
    problem = _problem()
    return {
        "shop": _shop(),
        "problem": problem,
        "event": "broadcast",
        "agent": "lucia@example.com",
        "text": "[es]\nLa huelga termina mañana.\n\n[fr]\nLa grève se termine demain.",
        "changed": problem["tickets"][:1],
        "sent": [{"number": 1042, "customer": "maria.garcia@example.net", "language": "es",
                  "version": "es", "fallback": False},
                 {"number": 1044, "customer": "john@example.org", "language": "en",
                  "version": "es", "fallback": True}],
        "skipped": [{"number": 1043, "customer": "claire@example.fr", "reason": "closed"}],
        "errors": [{"line": "#assign ana", "message": "#assign works on a ticket, not on a problem"}],
        "commands": ["#status / #estado <text>: the problem's status line"],
    }


def _problem_event(event: str) -> Callable[[], dict[str, Any]]:
    def make() -> dict[str, Any]:
        context = _agent_problem()
        context["event"] = event
        if event == "closed":
            context["changed"] = [{**t, "status": "closed", "code": "GRACIAS-7KQ2M"}
                                  for t in context["problem"]["tickets"]]
        return context
    return make


_FULL = {
    "acknowledgement": _acknowledgement,
    "agent_reply": _agent_reply,
    "update": _update,
    "waiting_reminder": _waiting_reminder,
    "closing": _closing,
    "reopened": _reopened,
    "self_solved": _self_solved,
    "satisfaction_thanks": _satisfaction_thanks,
    "promotion": _promotion,
    "agent_new_ticket": _agent_new_ticket,
    "agent_followup": _agent_followup,
    "agent_command_error": _agent_command_error,
    "agent_reminder": _agent_reminder,
    "agent_digest": _agent_digest,
    "agent_forged_warning": _agent_forged_warning,
    "agent_bounce": _agent_bounce,
    "agent_copy": _agent_copy,
    "agent_help": _agent_help,
    "agent_notice": _agent_notice,
    "agent_answers": _agent_answers,
    "agent_problem": _agent_problem,
}

# Further full variants, for templates whose text depends on the kind of event.
_MORE: dict[str, tuple[Callable[[], dict[str, Any]], ...]] = {
    "agent_reply": (_quick_answer_reply,),
    "agent_notice": (
        _promise_overdue_notice,
        _discount_problem_notice,
        _discount_problem_uncounted_notice,
        _pool_low_notice,
        _closing_waits_notice,
        _self_solved_notice,
        _low_satisfaction_notice,
        _unknown_notice,
    ),
    "satisfaction_thanks": (_happy_thanks,),
    "agent_problem": tuple(_problem_event(event) for event in (
        "created", "linked", "reopened", "unlinked", "keywords", "note", "commands", "closed",
        "rejected", "help", "future-event")),
}

# Values replaced by their "absent" form in the sparse variant.
_SPARSE_TICKET: dict[str, Any] = {"subject": "", "customer_name": "", "last_contact": None,
                                  "orders": [], "closing_pending": None}
_SPARSE = {
    "update_days": 1,
    "agent_name": "",
    "status_line": None,
    "last_request": None,
    "waiting_days": 1,
    "close_in_days": None,
    "personal_line": None,
    "discount": None,
    "attachments": [],
    "commands": [],
    "reopened": False,
    "delivered": True,
    "last_text": None,
    "tickets": [],
    "opened": 0,
    "closed": 0,
    "open": 0,
    "waiting": 0,
    "overdue_updates": 0,
    "promises_due": [],
    "first_response_hours": None,
    "reason": None,
    "faq": [],
    "customer": {"name": "", "email": "maria.garcia@example.net"},
    "greeting": False,
    "answers": [],
    "problems": [],
    "agent": None,
    "changed": [],
    "sent": [],
    "skipped": [],
    "errors": [],
}


def _sparse(name: str) -> dict[str, Any]:
    context = sample_context(name)
    context["shop"] = _bare_shop()
    if isinstance(context.get("ticket"), dict):
        ticket = context["ticket"]
        context["ticket"] = {**ticket, **{k: v for k, v in _SPARSE_TICKET.items() if k in ticket}}
    for key, value in _SPARSE.items():
        if key in context:
            context[key] = value
    if name in ("agent_forged_warning", "agent_help", "agent_answers"):
        context["ticket"] = None  # a forged message or a #help may name no ticket at all
    if name == "agent_copy":
        context["kind"] = "note"  # the full sample is a reply; this takes the note branch
        context["text"] = "Ha llamado por teléfono: prefiere esperar al paquete, no reenviarlo."
    if name == "agent_problem":
        # a problem made from the command line, with nothing linked yet and no status line
        context["problem"] = {**context["problem"], "tickets": [], "keywords": [],
                              "status_line": None, "status": "closed"}
        context.update(event="closed", text=None)
    if name == "agent_notice":
        # a low pool can be noticed with no ticket at hand, and may be down to its last code
        context.update(ticket=None, notice="pool_low", details={"remaining": 1})
    return context

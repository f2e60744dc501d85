"""The report's figures as JSON (the documented keys), CSV, plain text and HTML.

Pure. The HTML draws its bar charts with table cells of a given width and background colour
only: no images, no scripts, no remote content, inline styles (mail clients drop <style> blocks
and block remote images), so the charts read the same in webmail and desktop clients; every
figure is also printed as a number next to its bar, and the text part carries them all.
"""

from __future__ import annotations

import csv
import html
import io
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from daemon.tickets.report.figures import Figures, Hours

_LABELS: dict[str, dict[str, str]] = {
    "en": {
        "title": "Report", "period": "Period", "tickets": "Tickets", "new": "new",
        "closed": "closed", "open": "open at the end", "by_reason": "By reason",
        "by_language": "By language", "by_mailbox": "By mailbox",
        "first_response": "First response (hours)", "business": "business hours",
        "wall": "wall-clock", "median": "median", "p90": "90th percentile",
        "unanswered": "still without a first response", "resolution": "Resolution (hours)",
        "forgotten": "Forgotten (7 days or more without a mail to the customer)",
        "none": "none", "promises": "Promises", "made": "made", "kept": "kept on time",
        "late": "late", "satisfaction": "Satisfaction", "answers": "answers", "mean": "mean",
        "lowest": "Lowest scores", "self_help": "Self-help", "offered": "answers offered",
        "self_solved": "solved by the customer", "quick_answers": "Quick answers used",
        "discounts": "Discount codes issued", "ticket": "ticket",
    },
    "es": {
        "title": "Informe", "period": "Periodo", "tickets": "Incidencias", "new": "nuevas",
        "closed": "cerradas", "open": "abiertas al final", "by_reason": "Por motivo",
        "by_language": "Por idioma", "by_mailbox": "Por buzón",
        "first_response": "Primera respuesta (horas)", "business": "horas laborables",
        "wall": "horas de reloj", "median": "mediana", "p90": "percentil 90",
        "unanswered": "aún sin primera respuesta", "resolution": "Resolución (horas)",
        "forgotten": "Olvidadas (7 días o más sin escribir al cliente)",
        "none": "ninguna", "promises": "Promesas", "made": "hechas", "kept": "cumplidas a tiempo",
        "late": "con retraso", "satisfaction": "Satisfacción", "answers": "respuestas",
        "mean": "media", "lowest": "Peor puntuadas", "self_help": "Autoayuda",
        "offered": "respuestas ofrecidas", "self_solved": "resueltas por el cliente",
        "quick_answers": "Respuestas rápidas usadas", "discounts": "Códigos de descuento emitidos",
        "ticket": "incidencia",
    },
    "fr": {
        "title": "Rapport", "period": "Période", "tickets": "Tickets", "new": "nouveaux",
        "closed": "clos", "open": "ouverts à la fin", "by_reason": "Par motif",
        "by_language": "Par langue", "by_mailbox": "Par boîte",
        "first_response": "Première réponse (heures)", "business": "heures ouvrées",
        "wall": "heures d'horloge", "median": "médiane", "p90": "90e centile",
        "unanswered": "encore sans première réponse", "resolution": "Résolution (heures)",
        "forgotten": "Oubliés (7 jours ou plus sans écrire au client)",
        "none": "aucun", "promises": "Promesses", "made": "faites", "kept": "tenues à temps",
        "late": "en retard", "satisfaction": "Satisfaction", "answers": "réponses",
        "mean": "moyenne", "lowest": "Moins bien notés", "self_help": "Auto-assistance",
        "offered": "réponses proposées", "self_solved": "résolus par le client",
        "quick_answers": "Réponses rapides utilisées", "discounts": "Codes de réduction émis",
        "ticket": "ticket",
    },
}


def labels(language: str) -> dict[str, str]:
    return _LABELS.get(language, _LABELS["en"])


def _iso(moment: datetime) -> str:
    return moment.replace(tzinfo=UTC).isoformat().replace("+00:00", "Z")


def _hours(value: Hours) -> dict[str, Any]:
    return {"count": value.count, "median": value.median, "p90": value.p90}


def as_json(f: Figures) -> dict[str, Any]:
    """The documented JSON object (README "Report" lists every key)."""
    return {
        "period": {"since": _iso(f.since), "until": _iso(f.until)},
        "tickets": {"new": f.new, "closed": f.closed, "open": f.open_at_end},
        "by_reason": dict(f.by_reason),
        "by_language": dict(f.by_language),
        "by_mailbox": dict(f.by_mailbox),
        "first_response_hours": {**_hours(f.first_response), "unanswered": f.unanswered},
        "first_response_business_hours": _hours(f.first_response_business),
        "resolution_hours": _hours(f.resolution),
        "forgotten": list(f.forgotten),
        "promises": {"made": f.promises_made, "kept": f.promises_kept, "late": f.promises_late},
        "satisfaction": {
            "answers": f.satisfaction_answers, "mean": f.satisfaction_mean,
            "distribution": {str(score): n for score, n in
                             enumerate(f.satisfaction_distribution, start=1)},
            "lowest": [{"ticket": s.ticket, "score": s.score, "subject": s.subject}
                       for s in f.satisfaction_lowest]},
        "faq_offered": dict(f.faq_offered),
        "self_solved": {"total": f.self_solved, "by_faq": dict(f.self_solved_by_faq)},
        "quick_answers": dict(f.quick_answers),
        "discounts": {"issued": f.discounts_issued,
                      "by_percent": {str(p): n for p, n in f.discounts_by_percent}},
    }


def as_csv(f: Figures) -> str:
    """One `figure,value` row per number, keys as in the JSON joined with dots."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["figure", "value"])
    for key, value in _flat(as_json(f)):
        writer.writerow([key, "" if value is None else value])
    return out.getvalue()


def _flat(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [row for key, inner in value.items()
                for row in _flat(inner, f"{prefix}.{key}" if prefix else str(key))]
    if isinstance(value, list):
        if all(not isinstance(item, dict | list) for item in value):
            return [(prefix, " ".join(str(item) for item in value))]
        return [row for index, item in enumerate(value, start=1)
                for row in _flat(item, f"{prefix}.{index}")]
    return [(prefix, value)]


def _local(moment: datetime, timezone: str) -> str:
    return moment.replace(tzinfo=UTC).astimezone(ZoneInfo(timezone)).strftime("%Y-%m-%d %H:%M")


def heading(f: Figures, language: str, timezone: str) -> str:
    words = labels(language)
    return f"{words['title']} {_local(f.since, timezone)} - {_local(f.until, timezone)}"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _hours_line(words: dict[str, str], value: Hours) -> str:
    return (f"{words['median']} {_fmt(value.median)}, {words['p90']} {_fmt(value.p90)} "
            f"(n={value.count})")


def as_text(f: Figures, language: str, timezone: str) -> str:
    w = labels(language)
    lines = [heading(f, language, timezone), "",
             f"{w['tickets']}: {f.new} {w['new']}, {f.closed} {w['closed']}, "
             f"{f.open_at_end} {w['open']}"]
    for key, rows in (("by_reason", f.by_reason), ("by_language", f.by_language),
                      ("by_mailbox", f.by_mailbox)):
        lines += ["", f"{w[key]}:"] + [f"  {name:20} {n:>6}" for name, n in rows]
    lines += ["", f"{w['first_response']}:",
              f"  {w['wall']}: {_hours_line(w, f.first_response)}",
              f"  {w['business']}: {_hours_line(w, f.first_response_business)}",
              f"  {w['unanswered']}: {f.unanswered}",
              "", f"{w['resolution']}: {_hours_line(w, f.resolution)}",
              "", f"{w['forgotten']}: {len(f.forgotten) or w['none']}",
              *textwrap.wrap(", ".join(f"#{n}" for n in f.forgotten), width=96,
                             initial_indent="  ", subsequent_indent="  "),
              "", f"{w['promises']}: {f.promises_made} {w['made']}, {f.promises_kept} "
              f"{w['kept']}, {f.promises_late} {w['late']}",
              "", f"{w['satisfaction']}: {f.satisfaction_answers} {w['answers']}, "
              f"{w['mean']} {_fmt(f.satisfaction_mean)}"]
    lines += [f"  {score}: {n}" for score, n in enumerate(f.satisfaction_distribution, start=1)]
    if f.satisfaction_lowest:
        lines += [f"  {w['lowest']}:"] + [f"    #{s.ticket} ({s.score}) {s.subject}"
                                           for s in f.satisfaction_lowest]
    lines += ["", f"{w['self_help']}: {f.self_solved} {w['self_solved']}"]
    lines += [f"  {name:20} {n:>6}" for name, n in f.self_solved_by_faq]
    lines += [f"  {w['offered']}: "
              + (", ".join(f"{name} {n}" for name, n in f.faq_offered) or w["none"])]
    lines += ["", f"{w['quick_answers']}: {sum(n for _, n in f.quick_answers) or w['none']}"]
    lines += [f"  {name:20} {n:>6}" for name, n in f.quick_answers]
    lines += ["", f"{w['discounts']}: {f.discounts_issued}"
              + "".join(f"  ({p} %: {n})" for p, n in f.discounts_by_percent)]
    return "\n".join(lines) + "\n"


_BAR = "#3b6ea8"
_CELL = "padding:2px 8px;font-family:sans-serif;font-size:14px;"
_MAX_BAR = 300


def _bars(title: str, rows: Sequence[tuple[str, int]]) -> str:
    """A horizontal bar chart: label, a coloured cell as wide as the value, the number."""
    if not rows:
        return ""
    top = max(n for _, n in rows) or 1
    body = "".join(
        f'<tr><td style="{_CELL}">{html.escape(str(name))}</td>'
        f'<td style="{_CELL}"><table role="presentation" cellpadding="0" cellspacing="0" '
        f'border="0"><tr><td class="bar" width="{max(2, round(_MAX_BAR * n / top))}" '
        f'style="background:{_BAR};height:14px;width:{max(2, round(_MAX_BAR * n / top))}px;'
        f'font-size:1px;line-height:1px;">&nbsp;</td></tr></table></td>'
        f'<td class="value" style="{_CELL}text-align:right;">{n}</td></tr>\n'
        for name, n in rows)
    return (f'<h2 style="font-family:sans-serif;font-size:17px;">{html.escape(title)}</h2>\n'
            f'<table class="chart" role="presentation" cellpadding="0" cellspacing="0" '
            f'border="0">\n{body}</table>\n')


def as_html(f: Figures, language: str, timezone: str) -> str:
    """A self-contained HTML document: the text figures plus bar charts made of table cells."""
    w = labels(language)
    title = heading(f, language, timezone)
    charts = "".join([
        _bars(f"{w['tickets']}", [(w["new"], f.new), (w["closed"], f.closed),
                                  (w["open"], f.open_at_end)]),
        _bars(w["by_reason"], f.by_reason),
        _bars(w["by_language"], f.by_language),
        _bars(w["by_mailbox"], f.by_mailbox) if len(f.by_mailbox) > 1 else "",
        _bars(w["satisfaction"], [(str(score), n) for score, n in
                                  enumerate(f.satisfaction_distribution, start=1)]),
        _bars(w["self_help"], f.self_solved_by_faq),
        _bars(w["quick_answers"], f.quick_answers),
    ])
    text = html.escape(as_text(f, language, timezone))
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="{html.escape(language)}">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n"
        '<body style="margin:0;padding:16px;background:#ffffff;color:#1a1a1a;">\n'
        f'<h1 style="font-family:sans-serif;font-size:20px;">{html.escape(title)}</h1>\n'
        f"{charts}"
        f'<pre style="font-family:monospace;font-size:13px;white-space:pre-wrap;">{text}</pre>\n'
        "</body>\n</html>\n")

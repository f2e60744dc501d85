"""django-helpdesk's email processing on the bench's messages; runs inside the helpdesk venv.

Usage: python peer_helpdesk.py WORKDIR MESSAGES_DIR MANIFEST_JSON OUTPUT_JSON

A throwaway Django project (SQLite, file-based email backend so its outgoing mail is written, not
sent) with one queue whose slug is "bench" (its subject tag is `[bench-N]`) and two agents copied
on new and updated tickets, like incidencias' two agents. Each message file is handed, in order,
to `helpdesk.email.extract_email_metadata` — what `manage.py get_email` calls for each message of
a queue's local mailbox directory — so arrival order is kept (the command itself takes files in
`os.listdir` order) and an Outlook-style reply carries the `[bench-N]` of the ticket helpdesk
really opened for its conversation. Writes {seconds, messages, errors, ticket_of} as JSON.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

AGENTS = "ana@example.com,luis@example.com"


_URLS = """\
from django.urls import include, path

urlpatterns = [path("helpdesk/", include("helpdesk.urls", namespace="helpdesk"))]
"""


def configure(workdir: Path) -> None:
    """Settings in code, and a URL conf: helpdesk's mail templates link to its views."""
    import django
    from django.conf import settings

    (workdir / "bench_helpdesk_urls.py").write_text(_URLS)
    sys.path.insert(0, str(workdir))

    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-not-secret",
        ALLOWED_HOSTS=["*"],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3",
                               "NAME": str(workdir / "helpdesk.sqlite3")}},
        INSTALLED_APPS=[
            "django.contrib.admin", "django.contrib.auth", "django.contrib.contenttypes",
            "django.contrib.sessions", "django.contrib.messages", "django.contrib.sites",
            "django.contrib.humanize", "rest_framework", "helpdesk",
        ],
        MIDDLEWARE=[],
        ROOT_URLCONF="bench_helpdesk_urls",
        SITE_ID=1,
        USE_TZ=True,
        TIME_ZONE="Europe/Madrid",
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        MEDIA_ROOT=str(workdir / "media"),
        STATIC_URL="/static/",
        TEMPLATES=[{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True,
                    "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                                       "django.contrib.auth.context_processors.auth",
                                                       "django.contrib.messages.context_processors.messages"]}}],
        EMAIL_BACKEND="django.core.mail.backends.filebased.EmailBackend",
        EMAIL_FILE_PATH=str(workdir / "sent"),
        DEFAULT_FROM_EMAIL="incidencias@example.com",
        SERVER_EMAIL="incidencias@example.com",
        HELPDESK_TEAMS_MODE_ENABLED=False,
        LOGGING_CONFIG=None,
    )
    django.setup()


def main(workdir: Path, messages_dir: Path, manifest: Path, output: Path) -> None:
    configure(workdir)
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    from helpdesk.email import extract_email_metadata
    from helpdesk.models import Queue

    queue = Queue.objects.create(
        title="Bench", slug="bench", email_address="incidencias@example.com",
        allow_email_submission=True, email_box_type="local", email_box_local_dir=str(messages_dir),
        new_ticket_cc=AGENTS, updated_ticket_cc=AGENTS)
    logger = logging.getLogger("helpdesk-bench")
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    from bench.workload import resolve_placeholder

    order = json.loads(manifest.read_text())
    raws = [(messages_dir / f"{entry['index']:06d}.eml").read_bytes() for entry in order]
    ticket_of_conversation: dict[int, int] = {}
    ticket_of: dict[str, int | None] = {}
    errors: list[str] = []
    seconds = 0.0
    for entry, raw in zip(order, raws, strict=True):
        name = f"{entry['index']:06d}"
        text = resolve_placeholder(
            raw, lambda c: f"[bench-{ticket_of_conversation[c]}]" if c in ticket_of_conversation else ""
        ).decode("utf-8", "replace")  # as process_queue reads a local mailbox file
        start = time.perf_counter()
        try:
            ticket = extract_email_metadata(message=text, queue=queue, logger=logger)
        except Exception as exc:  # a peer's failure on one message is a result, not a crash
            errors.append(f"{name}: {type(exc).__name__}: {exc}")
            ticket = None
        seconds += time.perf_counter() - start
        ticket_of[name] = ticket.id if ticket is not None else None
        if entry["new"] and ticket is not None:
            ticket_of_conversation[int(entry["conversation"])] = ticket.id
    sent = workdir / "sent"
    output.write_text(json.dumps({
        "seconds": seconds, "messages": len(order), "errors": errors[:20], "error_count": len(errors),
        "ticket_of": ticket_of, "sent_files": len(list(sent.iterdir())) if sent.exists() else 0,
    }))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))

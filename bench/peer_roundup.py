"""Roundup's mail gateway on the bench's messages; runs inside the Roundup venv.

Usage: python peer_roundup.py WORKDIR MESSAGES_DIR MANIFEST_JSON OUTPUT_JSON

Installs a fresh "classic" tracker with the sqlite backend, lets unknown senders register by
mail (the one-line schema change Roundup documents for trackers that take customer mail),
makes the two agents nosy on every issue (the closest to incidencias' agent notifications), and
sends outgoing mail to a file (SENDMAILDEBUG). Then it does what `roundup-mailgw TRACKER mailbox
FILE` (mbox mode) does — the script's own argument parsing, `MailGW.do_mailbox` — in one process,
one message per mbox file, in order, so that an Outlook-style reply can carry the `[issueN]` of
the issue Roundup really opened for its conversation (issue lookups are not timed).
Writes {seconds, messages, ticket_of, ...} as JSON, `ticket_of` keyed by file index.
"""

from __future__ import annotations

import configparser
import email
import json
import mailbox
import os
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
_PATCHED = ("message_from_bytes", "message_from_string", "message_from_file", "message_from_binary_file")


def install(tracker: Path) -> None:
    admin = str(BIN / "roundup-admin")
    subprocess.run([admin, "-i", str(tracker), "install", "classic", "sqlite"], check=True,
                   stdout=subprocess.DEVNULL)
    schema = tracker / "schema.py"
    text = schema.read_text()
    schema.write_text(text.replace("#db.security.addPermissionToRole('Anonymous', 'Email Access')",
                                   "db.security.addPermissionToRole('Anonymous', 'Email Access')"))
    config = configparser.RawConfigParser()
    config.read(tracker / "config.ini")
    config.set("tracker", "web", "http://localhost:8917/bench/")
    config.set("mail", "domain", "example.com")
    config.set("mail", "host", "localhost")
    config.set("tracker", "email", "incidencias")
    config.set("nosy", "add_author", "new")
    with (tracker / "config.ini").open("w") as handle:
        config.write(handle)
    subprocess.run([admin, "-i", str(tracker), "initialise", "bench-admin-password"], check=True,
                   stdout=subprocess.DEVNULL)
    # The agents: users who are on every issue's nosy list, as a shop's staff would be.
    detector = tracker / "detectors" / "bench_agents.py"
    detector.write_text(_AGENTS_DETECTOR)
    for login, address in (("ana", "ana@example.com"), ("luis", "luis@example.com")):
        subprocess.run([admin, "-i", str(tracker), "create", "user", f"username={login}",
                        f"address={address}", "roles=User"], check=True, stdout=subprocess.DEVNULL)


_AGENTS_DETECTOR = '''\
def add_agents(db, cl, nodeid, newvalues):
    agents = [db.user.lookup(name) for name in ("ana", "luis")]
    nosy = newvalues.get("nosy") or []
    newvalues["nosy"] = list(dict.fromkeys(list(nosy) + agents))


def init(db):
    db.issue.audit("create", add_agents)
'''


def main(workdir: Path, messages_dir: Path, manifest: Path, output: Path) -> None:
    tracker = workdir / "tracker"
    install(tracker)
    sent = workdir / "sent.mbox"
    os.environ["SENDMAILDEBUG"] = str(sent)
    sys.path.insert(0, str(tracker))
    from roundup import instance, mailgw
    from roundup.scripts.roundup_mailgw import parse_arguments

    from bench.workload import resolve_placeholder

    home = instance.open(str(tracker))
    single = workdir / "one.mbox"
    _cmd, arguments = parse_arguments([str(tracker), "mailbox", str(single)])
    handler = mailgw.MailGW(home, arguments)
    order = json.loads(manifest.read_text())
    # do_mailbox swaps email.message_from_* for the RoundupMessage class and, in 2.6.0, puts
    # back the wrong function (the last one saved) for all four: fine in the one-shot script,
    # fatal for a second call. Restoring them keeps every call as the script makes it.
    saved = {name: getattr(email, name) for name in _PATCHED}
    issue_of_conversation: dict[int, str] = {}
    ticket_of: dict[str, str | None] = {}
    busy = 0.0
    failures = 0
    for entry in order:
        name = f"{entry['index']:06d}"
        raw = resolve_placeholder(
            (messages_dir / f"{name}.eml").read_bytes(),
            lambda c: f"[issue{issue_of_conversation[c]}]" if c in issue_of_conversation else "")
        box = mailbox.mbox(str(single))
        box.add(mailbox.mboxMessage(raw))
        box.close()
        start = time.perf_counter()
        failures += handler.do_mailbox(str(single)) != 0
        busy += time.perf_counter() - start
        for function_name, function in saved.items():
            setattr(email, function_name, function)
        issue = _issue_of(home, str(entry["message_id"]))
        ticket_of[name] = issue
        if entry["new"] and issue is not None:
            issue_of_conversation[int(entry["conversation"])] = issue
    output.write_text(json.dumps({
        "seconds": busy, "messages": len(order), "failures": failures, "ticket_of": ticket_of,
        "sent_bytes": sent.stat().st_size if sent.exists() else 0,
    }))


def _issue_of(home: object, message_id: str) -> str | None:
    db = home.open("admin")  # type: ignore[attr-defined]
    try:
        for msg in db.msg.stringFind(messageid=message_id):
            issues = db.issue.find(messages=msg)
            if issues:
                return str(issues[0])
        return None
    finally:
        db.close()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4]))

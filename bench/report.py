"""The results file a person reads: figures, targets, the machine, and where the time goes."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

# Issue 20's targets on a 2-core machine (issue 8 set the first ones).
TARGETS = {
    "end_to_end": 400.0,
    "pipeline": 850.0,
    "roundup_factor": 25.0,
    "helpdesk_factor": 8.0,
    "latency_p95": 1.0,
    "sweep_ms": 50.0,
    "peak_rss_mb": 200.0,
    "floor_share": 0.6,
}

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?):\d+\)$")
# The daemon's steps, found by the function names on a sample's stack (inclusive time).
STEPS = (
    ("parse (mail-parser, daemon/mail/parsing.py)", ("parse (", "mail/parsing.py")),
    ("classify", ("classify (", "mail/classify.py")),
    ("language detection (lingua)", ("detect_language (", "mail/language.py")),
    ("quote stripping", ("visible_text (", "mail/quoting.py")),
    ("threading (match_ticket)", ("match_ticket (", "tickets/threading.py")),
    ("rendering templates (Jinja2)", ("Renderer.render (", "outbound/rendering.py")),
    ("composing outgoing mail (email package)", ("compose (", "outbound/compose.py")),
    ("agent notifications (render + compose, 2 agents)", ("Mailer.to_agents (", "outbound/queue.py")),
    ("SQLAlchemy flush + commit", ("Session.flush (", "session.py")),
    ("SQLAlchemy commit", ("SessionTransaction.commit (", "session.py")),
)


def aggregate_profile(raw: str, within: str, skip: str = "warm_up (") -> dict[str, Any]:
    """py-spy raw samples → share of time per daemon step and per library (leaf frame).

    Only stacks through `within`, and none through `skip` (the warm-up loads language models).
    """
    total = 0
    steps: Counter[str] = Counter()
    libraries: Counter[str] = Counter()
    functions: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        frames = stack.split(";")
        if any(f.startswith(skip) for f in frames):
            continue
        start = next((i for i, f in enumerate(frames) if f.startswith(within + " (")), None)
        if start is None:
            continue
        count = int(count_text)
        total += count
        inner = frames[start:]
        for name, (func, file) in STEPS:
            if any(f.startswith(func) and file in f for f in inner):
                steps[name] += count
        libraries[_library(inner[-1])] += count
        for frame in dict.fromkeys(_short(f) for f in inner):
            functions[frame] += count
    if not total:
        return {"error": f"no samples inside {within}"}
    return {
        "samples": total,
        "steps": [(name, 100 * n / total) for name, n in steps.most_common()],
        "libraries": [(name, 100 * n / total) for name, n in libraries.most_common(10)],
        "functions": [(name, 100 * n / total) for name, n in functions.most_common(30)],
    }


def _short(frame: str) -> str:
    match = _FRAME.match(frame)
    return f"{match['func']} ({match['file']})" if match else frame


def _library(frame: str) -> str:
    """Where a leaf frame is: a daemon module, or the top package (email, sqlalchemy, jinja2, …).

    py-spy names files relative to sys.path, so the first path component is the package; time
    inside a C or Rust extension (sqlite3, lingua) shows as the Python frame that called it.
    """
    match = _FRAME.match(frame)
    if not match:
        return "other"
    path = match["file"]
    if path.startswith("daemon/"):
        return path
    return path.split("/", 1)[0].removesuffix(".py")


def _fmt(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _met(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    w = r["workload"]
    pipe = r["pipeline"]
    e2e = r["end_to_end"]
    lat = r["latency"]
    scale = r["scale"]
    backlog = r["backlog"]
    floor = r["parse_floor"]
    share = pipe["rate"] / floor["mail-parser"]
    out = [
        f"# Benchmark results, {r['date']}",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), Python {m['python']}, {m['platform']}; "
        f"incidencias at {m['commit']}, database {r['settings'].get('database', 'sqlite')}. "
        f"Load average before the run {m['load_before']}, after "
        f"{m['load_after']} (other work on the machine slows every figure alike). "
        f"Whole run: {r['wall_seconds'] / 60:.1f} min. Each throughput is the median of "
        f"{r['settings']['runs']} runs.",
        "",
        f"Workload (seed {w['seed']}): {w['messages']:,} messages, {w['bytes'] / 1e6:.1f} MB — "
        f"{w.get('new', 0)} new conversations, {w.get('reply-headers', 0)} replies with "
        f"In-Reply-To/References, {w.get('reply-outlook', 0)} Outlook-style `RE: [#N]`, "
        f"{w.get('reply-subject', 0)} subject-only `Re:`; {w['attachments']} with a 200 KB JPEG/PDF, "
        f"{w['html_only']} HTML-only; es {w['lang_es']}, fr {w['lang_fr']}, en {w['lang_en']}.",
        "",
        "## incidencias",
        "",
        "| measurement | result | target | met |",
        "| --- | --- | --- | --- |",
        f"| end-to-end (Dovecot INBOX → processed → {e2e['mail_delivered']:,} mails accepted by the "
        f"SMTP sink) | {_fmt(e2e['rate'])} msg/s | ≥ {TARGETS['end_to_end']:.0f} | "
        f"{_met(e2e['rate'] >= TARGETS['end_to_end'])} |",
        f"| pipeline in-process (parse → … → outbox) | {_fmt(pipe['rate'])} msg/s, threading "
        f"{pipe['threading']:.1%} | ≥ {TARGETS['pipeline']:.0f} | "
        f"{_met(pipe['rate'] >= TARGETS['pipeline'])} |",
        f"| parse floor: mail-parser | {_fmt(floor['mail-parser'])} msg/s | | |",
        f"| parse floor: `email.message_from_bytes`, `policy.default` | "
        f"{_fmt(floor['email.policy.default'])} msg/s | | |",
        f"| pipeline / mail-parser floor | {share:.2f} | ≥ {TARGETS['floor_share']} | "
        f"{_met(share >= TARGETS['floor_share'])} |",
    ]
    if lat.get("received"):
        stranded = (f"; {lat['stranded']} stranded (no acknowledgement within 10 s)"
                    if lat.get("stranded") else "")
        out.append(f"| latency, APPEND → acknowledgement at the sink ({lat['sent']} new customers, "
                   f"one by one{stranded}) | p50 {lat['p50'] * 1000:.0f} ms, p95 {lat['p95'] * 1000:.0f} ms, "
                   f"max {lat['max'] * 1000:.0f} ms | p95 < 1 s | "
                   f"{_met(lat['p95'] < TARGETS['latency_p95'])} |")
    sweep = min(scale["sweep_ms"])
    sweep_median = sorted(scale["sweep_ms"])[len(scale["sweep_ms"]) // 2]
    out += [
        f"| scheduler sweep at {scale['tickets']:,} tickets (95 % closed; "
        f"{_due_note(scale.get('sweep_sent'))}) | median {sweep_median:.1f} ms (best {sweep:.1f}) | "
        f"< {TARGETS['sweep_ms']:.0f} ms | {_met(sweep_median < TARGETS['sweep_ms'])} |",
        f"| `incidencias tickets list` at {scale['tickets']:,} tickets (whole command) | "
        f"{sorted(scale['list_seconds'])[len(scale['list_seconds']) // 2]:.2f} s | | |",
        f"| database size at {scale['tickets']:,} tickets (2 messages + raw mail each) | "
        f"{scale['database_mb']:.0f} MB | | |",
        f"| peak RSS, backlog of {backlog['messages']:,} messages ({backlog['seconds']:.0f} s"
        f"{'' if backlog.get('finished', True) else ', stopped by its timeout before the end'}) | "
        f"{backlog['peak_rss_mb']:.0f} MB | < {TARGETS['peak_rss_mb']:.0f} MB | "
        f"{_met(backlog['peak_rss_mb'] < TARGETS['peak_rss_mb'])} |",
    ]
    light = r.get("backlog_light")
    if light:
        out.append(f"| peak RSS, same backlog, `language_detection = \"light\"` "
                   f"({light['seconds']:.0f} s) | {light['peak_rss_mb']:.0f} MB | "
                   f"< {TARGETS['peak_rss_mb']:.0f} MB | "
                   f"{_met(light['peak_rss_mb'] < TARGETS['peak_rss_mb'])} |")
    out += ["", _rss_line(backlog), "", "## Same-run ratios", ""]
    out += [f"- {line}" for line in ratio_lines(r)]
    out += ["", *_peers_section(r, e2e["rate"], pipe)]
    out += _profile_section(r.get("profile"))
    if r.get("chart"):
        out += ["", f"![chart]({r['chart']})"]
    out += ["", "Raw figures: the `.json` file of the same name. How each figure is taken: "
            "`bench/README.md`."]
    return "\n".join(out) + "\n"


def ratio_lines(r: dict[str, Any]) -> list[str]:
    """incidencias against the peers and the parse floor measured in the same run, with targets.

    Ratios of one run cancel what the machine's load does to every figure alike; a peer that did
    not run says so instead of a number.
    """
    e2e, pipe, floor = r["end_to_end"]["rate"], r["pipeline"]["rate"], r["parse_floor"]["mail-parser"]
    share = pipe / floor
    lines = [f"pipeline ÷ mail-parser floor: {pipe:,.1f} ÷ {floor:,.1f} = {share:.2f} "
             f"(target ≥ {TARGETS['floor_share']}: {_met(share >= TARGETS['floor_share'])})"]
    peers = r.get("peers") or {}
    for key, title, want in (("django-helpdesk", "django-helpdesk", TARGETS["helpdesk_factor"]),
                             ("roundup", "Roundup", TARGETS["roundup_factor"])):
        peer = peers.get(key) or {}
        if not peer.get("rate"):
            why = peer.get("error") or "not run in this run"
            lines.append(f"end to end ÷ {title}: — ({why})")
            continue
        factor = e2e / peer["rate"]
        lines.append(f"end to end ÷ {title}: {e2e:,.1f} ÷ {peer['rate']:,.1f} = {factor:.1f} "
                     f"(target ≥ {want:.0f}: {_met(factor >= want)})")
    return lines


def _due_note(sent: int | None) -> str:
    if sent is None:
        return "nothing due"
    return "nothing due" if sent == 0 else f"{sent} mails queued during the timed sweeps"


def _rss_line(backlog: dict[str, Any]) -> str:
    samples = backlog["samples"]
    if not samples:
        return ""
    points = []
    for share in (0.1, 0.5, 0.9):
        index = min(len(samples) - 1, int(len(samples) * share))
        t, delivered, rss = samples[index]
        points.append(f"{rss:.0f} MB at {t:.0f} s ({delivered:,} mails out)")
    return "RSS while the backlog drains: " + ", ".join(points) + "."


def _peers_section(r: dict[str, Any], ours_rate: float, pipe: dict[str, Any]) -> list[str]:
    found = r.get("peers") or {}
    out = ["## Peers on the same messages, same run", ""]
    if not found:
        return [*out, "Not run (`--no-peers` or smoke run).", ""]
    out += ["| system | msg/s | replies threaded right | messages in a ticket | incidencias end-to-end is |",
            "| --- | --- | --- | --- | --- |",
            f"| incidencias (end-to-end / pipeline) | {_fmt(ours_rate)} / {_fmt(pipe['rate'])} | "
            f"{pipe['threading']:.1%} | all | |"]
    factors = {"roundup": TARGETS["roundup_factor"], "django-helpdesk": TARGETS["helpdesk_factor"]}
    notes = []
    for key, peer in found.items():
        if peer.get("error") or not peer.get("rate"):
            out.append(f"| {peer['title']} | did not run | | | |")
            notes.append(f"- {peer['title']}: {peer.get('error')}")
            continue
        factor = ours_rate / peer["rate"]
        want = factors.get(key)
        verdict = (f"{factor:.1f} times (target ≥ {want:.0f}: {_met(factor >= want)})" if want
                   else f"{factor:.1f} times")
        out.append(f"| {peer['title']} {peer['version']} | {_fmt(peer['rate'])} | {peer['threading']:.1%} | "
                   f"{peer['accepted']:,} of {r['workload']['messages']:,} | {verdict} |")
    return [*out, "", *notes, ""] if notes else [*out, ""]


def _profile_section(profile: dict[str, Any] | None) -> list[str]:
    if not profile:
        return []
    if "error" in profile:
        return ["## Where the pipeline's time goes", "", f"Not profiled: {profile['error']}", ""]
    out = ["## Where the pipeline's time goes", "",
           f"py-spy, {profile['samples']:,} samples inside `Ingestor.ingest_many` (share of its time; "
           "steps overlap where one calls another):", "",
           "| step | share |", "| --- | --- |"]
    out += [f"| {name} | {pct:.0f} % |" for name, pct in profile["steps"]]
    out += ["", "Leaf frames by library (where the CPU actually is):", "",
            "| library | share |", "| --- | --- |"]
    out += [f"| {name} | {pct:.0f} % |" for name, pct in profile["libraries"]]
    return [*out, ""]

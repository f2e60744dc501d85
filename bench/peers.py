"""The peers: their own virtual environments from PyPI, and their runs on the bench's messages.

Each peer runs in its own venv through a small driver script (peer_roundup.py, peer_helpdesk.py)
that sets up a fresh tracker, processes the messages, and reports which ticket each landed in.
A peer that cannot be installed or run is recorded with the reason, and the bench goes on.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench.workload import Workload, generate, placeholder_tag, threading_correctness

BENCH = Path(__file__).resolve().parent
TOOLS = ("matplotlib>=3.8", "py-spy>=0.3")


@dataclass(frozen=True)
class Peer:
    key: str
    title: str
    requirements: tuple[str, ...]
    driver: str


# Pinned so a result names what was measured; change deliberately, and say so in the results.
PEERS = (
    Peer("roundup", "Roundup roundup-mailgw, mbox mode, sqlite", ("roundup==2.6.0",),
         "peer_roundup.py"),
    Peer("django-helpdesk", "django-helpdesk email processing, sqlite", ("django-helpdesk==2.6.1",),
         "peer_helpdesk.py"),
)


@dataclass
class PeerRun:
    seconds: float
    messages: int
    accepted: int  # messages that ended up in some ticket
    threading: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds


@dataclass
class PeerResult:
    peer: Peer
    version: str = ""
    runs: list[PeerRun] = field(default_factory=list)
    error: str | None = None


def ensure_venv(path: Path, requirements: tuple[str, ...]) -> str | None:
    """Create the venv and install `requirements` unless done before; the error text, or None."""
    marker = path / ".bench-installed"
    wanted = "\n".join(requirements)
    if marker.exists() and marker.read_text() == wanted:
        return None
    try:
        if not (path / "bin" / "python").exists():
            subprocess.run([sys.executable, "-m", "venv", str(path)], check=True,
                           capture_output=True, text=True)
        subprocess.run([str(path / "bin" / "python"), "-m", "pip", "install", "-q",
                        "--disable-pip-version-check", *requirements],
                       check=True, capture_output=True, text=True, timeout=1200)
    except subprocess.CalledProcessError as exc:
        return f"{' '.join(exc.cmd[:3])}… exited {exc.returncode}: {(exc.stderr or '')[-1500:]}"
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"
    marker.write_text(wanted)
    return None


def installed_version(venv: Path, distribution: str) -> str:
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         f"import importlib.metadata as m; print(m.version({distribution!r}))"],
        capture_output=True, text=True)
    return result.stdout.strip() or "?"


def run_peer(peer: Peer, venv: Path, n: int, seed: int, runs: int,
             log: Callable[[str], None]) -> PeerResult:
    """`runs` runs of the peer on the workload, each on a fresh tracker."""
    result = PeerResult(peer)
    error = ensure_venv(venv, peer.requirements)
    if error is not None:
        result.error = f"could not install {' '.join(peer.requirements)}: {error}"
        return result
    result.version = installed_version(venv, peer.requirements[0].split("=")[0])
    workload = generate(n, seed, tag=placeholder_tag)
    for number in range(runs):
        with tempfile.TemporaryDirectory(prefix=f"bench-{peer.key}-") as tmp:
            try:
                run = _one_run(peer, venv, workload, Path(tmp))
            except RuntimeError as exc:
                result.error = str(exc)
                return result
        log(f"  {peer.key} run {number + 1}: {run.rate:.1f} msg/s, threading {run.threading:.1%}")
        result.runs.append(run)
    return result


def _one_run(peer: Peer, venv: Path, workload: Workload, tmp: Path) -> PeerRun:
    source = tmp / "messages"
    source.mkdir()
    for mail in workload.mails:
        (source / f"{mail.index:06d}.eml").write_bytes(mail.raw)
    manifest = tmp / "manifest.json"
    manifest.write_text(json.dumps(workload.manifest()))
    output = tmp / "result.json"
    work = tmp / "work"
    work.mkdir()
    done = subprocess.run([str(venv / "bin" / "python"), str(BENCH / peer.driver), str(work),
                           str(source), str(manifest), str(output)], capture_output=True, text=True,
                          timeout=7200, env={**os.environ, "PYTHONPATH": str(BENCH.parent)})
    if done.returncode != 0 or not output.exists():
        raise RuntimeError(f"{peer.driver} exited {done.returncode}: {done.stderr[-2000:]}")
    data = json.loads(output.read_text())
    ticket_of = _by_message_id(workload, data["ticket_of"])
    accepted = sum(1 for m in workload.mails if ticket_of.get(m.message_id) is not None)
    return PeerRun(data["seconds"], data["messages"], accepted,
                   threading_correctness(workload, ticket_of))


def _by_message_id(workload: Workload, found: dict[str, object]) -> dict[str, str | int | None]:
    """Driver answers keyed by file index → keyed by Message-ID."""
    mapped: dict[str, str | int | None] = {}
    for mail in workload.mails:
        value = found.get(f"{mail.index:06d}")
        mapped[mail.message_id] = value if isinstance(value, (str, int)) else None
    return mapped

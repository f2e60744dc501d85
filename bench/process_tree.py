"""Memory of the daemon as a whole: `incidencias run` and its children (the outbox sender).

`tree_rss_mb(pid)` is the RSS of a process plus its descendants' now; `tree_peak_mb(pid)` the sum
of their high-water marks (an upper bound of the tree's peak: each may peak at another moment).
`python -m bench.process_tree SECONDS [DIRECTORY]` samples every `incidencias run` on the machine
(started in DIRECTORY, when given) for that long and prints the largest tree RSS seen, for
measuring a bench run from beside it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path


def _field_mb(pid: int, name: str) -> float:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    for line in lines:
        if line.startswith(name + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def descendants(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            children = (task / "children").read_text().split()
        except FileNotFoundError:
            continue
        for child in map(int, children):
            found += [child, *descendants(child)]
    return found


def tree_rss_mb(pid: int) -> float:
    return sum(_field_mb(p, "VmRSS") for p in [pid, *descendants(pid)])


def tree_peak_mb(pid: int) -> float:
    return sum(_field_mb(p, "VmHWM") for p in [pid, *descendants(pid)])


def _daemons(directory: str | None) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")
                if directory is not None and str((entry / "cwd").resolve()) != directory:
                    continue
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
            if b"daemon" in command and b"run" in command and b"-m" in command:
                pids.append(int(entry.name))
    return pids


if __name__ == "__main__":
    until = time.monotonic() + float(sys.argv[1])
    largest = {"rss": 0.0, "parent": 0.0, "children": 0.0}
    while time.monotonic() < until:
        for pid in _daemons(sys.argv[2] if len(sys.argv) > 2 else None):
            total, own = tree_rss_mb(pid), _field_mb(pid, "VmRSS")
            if total > largest["rss"]:
                largest = {"rss": total, "parent": own, "children": total - own}
        time.sleep(0.5)
    print({k: round(v, 1) for k, v in largest.items()})

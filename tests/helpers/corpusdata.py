"""Where the test email corpus lives: tests/corpus (permissive copy), plus ../shared/corpus if present."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

LOCAL = Path(__file__).resolve().parents[1] / "corpus"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "corpus"


@dataclass(frozen=True)
class CorpusMessage:
    path: str
    category: str
    language: str
    source: str
    notes: str
    file: Path


def _read_index(root: Path) -> list[CorpusMessage]:
    index = root / "INDEX.tsv"
    if not index.exists():
        return []
    with index.open(newline="", encoding="utf-8") as fh:
        rows = csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE)
        return [
            CorpusMessage(r["path"], r["category"], r["language"], r["source"], r["notes"], root / r["path"])
            for r in rows
        ]


def corpus_messages() -> list[CorpusMessage]:
    """Every indexed message: the shared corpus when it is there, else the local permissive copy."""
    shared = _read_index(SHARED)
    return shared if shared else _read_index(LOCAL)


def corpus_file(relative: str) -> Path | None:
    """A corpus file by its path inside the corpus, or None when neither copy has it."""
    for root in (LOCAL, SHARED):
        candidate = root / relative
        if candidate.exists():
            return candidate
    return None

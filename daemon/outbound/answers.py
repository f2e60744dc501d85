"""The quick-answer catalogue: which answers exist, in which languages, and what each one says first.

An answer is a file `<lang>/answers/<name>.j2` in the built-in templates or in the shop's template
directory; a shop file replaces the built-in one with the same path and adds nothing else. Names
are lower-case letters, digits and `-`; a file named otherwise is reported as a stray, never used.
This module only reads the files; rendering them is the Renderer's job.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources.abc import Traversable

ANSWERS_DIR = "answers"
ANSWER_NAME = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_ANSWER_FILE = re.compile(r"([a-z0-9]+(?:-[a-z0-9]+)*)\.j2")
_LANGUAGE_DIR = re.compile(r"[a-z]{2}")
_COMMENT = re.compile(r"\{#.*?#\}", re.DOTALL)


@dataclass(frozen=True)
class AnswerSummary:
    """One line of the catalogue, as `#answers` and `answers list` show it."""

    name: str
    languages: tuple[str, ...]
    first_line: str


class AnswerBook:
    """The answers found under template roots, the first root (the shop's override) winning."""

    def __init__(self, roots: Sequence[Traversable]) -> None:
        self._files: dict[str, dict[str, Traversable]] = {}
        self._strays: list[str] = []
        for root in roots:
            for language, folder in _answer_folders(root):
                for entry in folder.iterdir():
                    match = _ANSWER_FILE.fullmatch(entry.name) if entry.is_file() else None
                    if match is None:
                        self._strays.append(str(entry))
                        continue
                    self._files.setdefault(match.group(1), {}).setdefault(language, entry)

    def names(self) -> list[str]:
        return sorted(self._files)

    def languages(self, name: str) -> list[str]:
        """Languages `name` exists in; empty for an unknown name."""
        return sorted(self._files.get(name, {}))

    def path(self, name: str, language: str) -> str:
        """The template path the Renderer loads this answer from."""
        return f"{language}/{ANSWERS_DIR}/{name}.j2"

    def filename(self, name: str, language: str) -> str:
        return str(self._files[name][language])

    def closest(self, name: str) -> list[str]:
        """Existing names that look like `name` (a typo, a prefix), best first, at most three."""
        names = self.names()
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        starting = [n for n in names if n.startswith(name) or name.startswith(n)]
        return list(dict.fromkeys([*close, *starting]))[:3]

    def first_line(self, name: str, preferred: Sequence[str] = ()) -> str:
        """The first line of the answer's text as written, in the first preferred language it has."""
        available = self.languages(name)
        language = next((lang for lang in preferred if lang in available), available[0])
        source = _COMMENT.sub("", self._files[name][language].read_text(encoding="utf-8"))
        return next((line.strip() for line in source.splitlines() if line.strip()), "")

    def summaries(self, preferred: Sequence[str] = ()) -> list[AnswerSummary]:
        return [AnswerSummary(name, tuple(self.languages(name)), self.first_line(name, preferred))
                for name in self.names()]

    def strays(self) -> list[str]:
        """Files in an answers folder that are not `<name>.j2` with a valid name, so never used."""
        return sorted(self._strays)


def _answer_folders(root: Traversable) -> list[tuple[str, Traversable]]:
    if not root.is_dir():
        return []
    found = []
    for language in root.iterdir():
        if language.is_dir() and _LANGUAGE_DIR.fullmatch(language.name):
            folder = language.joinpath(ANSWERS_DIR)
            if folder.is_dir():
                found.append((language.name, folder))
    return found

"""Header lines for text and display names that decode to exactly the text we meant.

CPython's folder (before gh-144156) can leave the space between two words as the white space
between two adjacent encoded words, which RFC 2047 §6.2 tells every reader to drop: a long
"¿me enviáis otra?" arrived as "¿me enviáisotra?". This module folds those fields itself:

- a run of words that need encoding becomes encoded words with its spaces inside them (Q: `_`),
  so the white space between two adjacent encoded words never carries meaning;
- a plain word keeps the plain space next to it, which readers keep, and that space is never
  where a line is folded: readers built on email.header.decode_header (mail-parser among them)
  lose a space folded between an encoded and a plain word. A plain word that cannot stay on its
  neighbour's line is encoded with its run instead;
- each encoded word is at most 75 characters and never splits a character's bytes; lines stay
  within 78 characters, except a single address or plain word longer than a line (never over
  998: the text is bounded by clean_header_text).
A display name is atoms, one quoted string, or atoms and encoded words; never a second address.
Readers split an address list before they decode (and so unfold) a name, so an address line may
fold anywhere; a name starts a new line rather than be split when that keeps it whole: CPython's
phrase parser reads the break between two encoded words as a space.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_MAX_LINE = 78
_MAX_WORD = 75
_OVERHEAD = len("=?utf-8?q??=")
# The encoded word a single character can need at most (four UTF-8 bytes, Q-encoded).
_MIN_ROOM = _OVERHEAD + 12
_PLAIN_WORD = re.compile(r"[\x21-\x7e]{1,77}")
_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~]{1,77}")
_QUOTABLE = re.compile(r"[\x20-\x7e]{1,60}")
_DIGITS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# RFC 2047 §5: what may stay literal in a Q-encoded word in a phrase (3) and in text (1).
_Q_PHRASE = frozenset(_DIGITS + b"!*+-/")
_Q_TEXT = frozenset(_DIGITS + b"!\"#$%&'()*+,-./:;<>@[\\]^`{|}~")

PLAIN, ENCODED, FIXED, TOGETHER = "plain", "encoded", "fixed", "together"


@dataclass(frozen=True)
class _Segment:
    """A plain word, a run of words to encode together, a token that is never encoded, or
    (TOGETHER) the mark of tokens up to the next fixed one that start a new line rather than
    be split over two."""

    kind: str
    text: str


def text_line(field: str, text: str) -> str:
    """`Field: text` folded with CRLF, for unstructured fields such as Subject."""
    segments = _segments(text.split(" "), lambda w: _PLAIN_WORD.fullmatch(w) is not None)
    return _Lines(field, _Q_TEXT, prefer_q=True).lay_out(segments)


def address_line(field: str, mailboxes: Sequence[tuple[str, str]]) -> str:
    """`Field: Name <addr>, …` folded with CRLF; `addr` is an already valid addr-spec."""
    segments: list[_Segment] = []
    for n, (name, addr) in enumerate(mailboxes):
        comma = "," if n + 1 < len(mailboxes) else ""
        if not name:
            segments.append(_Segment(FIXED, addr + comma))
            continue
        words = name.split(" ")
        if not all(_ATOM.fullmatch(w) for w in words) and _QUOTABLE.fullmatch(name) and "=?" not in name:
            quoted = name.replace("\\", "\\\\").replace('"', '\\"')
            segments.append(_Segment(FIXED, f'"{quoted}"'))
        else:
            # CPython's phrase parser reads the break between two encoded words as a space: a
            # name is kept on one line when it can be.
            segments += [_Segment(TOGETHER, ""),
                         *_segments(words, lambda w: _ATOM.fullmatch(w) is not None)]
        segments.append(_Segment(FIXED, f"<{addr}>{comma}"))
    # Readers split the addresses before decoding a name (which unfolds it): any fold is safe.
    return _Lines(field, _Q_PHRASE, prefer_q=False, free_folds=True).lay_out(segments)


def _segments(words: Sequence[str], plain: Callable[[str], bool]) -> list[_Segment]:
    """Plain words alone, and each run of consecutive words to encode as one segment."""
    found: list[_Segment] = []
    run: list[str] = []
    for word in words:
        if plain(word) and "=?" not in word:
            if run:
                found.append(_Segment(ENCODED, " ".join(run)))
                run = []
            found.append(_Segment(PLAIN, word))
        elif word or run:
            run.append(word)
    if run:
        found.append(_Segment(ENCODED, " ".join(run)))
    return found


class _Lines:
    """Folded header lines being built: tokens are separated by one space or CRLF + space."""

    def __init__(self, field: str, literal: frozenset[int], *, prefer_q: bool,
                 free_folds: bool = False) -> None:
        self._done: list[str] = []
        self._line = f"{field}:"
        self._last = ""  # kind of the last token written, "" before the first
        self._literal = literal
        self._prefer_q = prefer_q
        self._free_folds = free_folds

    def lay_out(self, segments: Sequence[_Segment]) -> str:
        carry = ""  # plain words that could not stay plain, encoded with the next run
        for n, segment in enumerate(segments):
            following = segments[n + 1] if n + 1 < len(segments) else None
            if segment.kind == ENCODED:
                self._encoded(carry + segment.text)
                carry = ""
            elif segment.kind == FIXED:
                self._fixed(segment.text)
            elif segment.kind == TOGETHER:
                width = self._together(segments[n + 1:])
                if self._last and self._width() + width > _MAX_LINE >= 1 + width:
                    self._newline()
            elif following is not None and following.kind == ENCODED:
                # Room for the next run's first encoded word, whole when it fits in one.
                first = min(_MAX_WORD, _OVERHEAD + len(self._encode(following.text)[1]))
                if not self._plain(segment.text, first):
                    carry += segment.text + " "
            elif not self._plain(segment.text, 0):
                self._encoded(segment.text)
        return "\r\n ".join([*self._done, self._line]) + "\r\n"

    def _together(self, segments: Sequence[_Segment]) -> int:
        """The width of the tokens up to and including the next fixed one, each one word."""
        width = 0
        for segment in segments:
            text = segment.text
            width += 1 + (_OVERHEAD + len(self._encode(text)[1]) if segment.kind == ENCODED else len(text))
            if segment.kind == FIXED:
                break
        return width

    def _fixed(self, token: str) -> None:
        if self._last and self._width() + 1 + len(token) > _MAX_LINE:
            self._newline()
        self._append(token, FIXED)

    def _plain(self, word: str, then: int) -> bool:
        """Place a plain word where no fold separates it from a neighbouring encoded word (`then`
        the width the encoded word after it needs); False when it cannot be (it gets encoded).
        A fresh line that fits the next encoded word whole beats a partial one on this line."""
        foldable = self._last in (PLAIN, FIXED) or (self._free_folds and self._last == ENCODED)
        for need in (len(word) + (1 + then if then else 0), len(word) + (1 + _MIN_ROOM if then else 0)):
            if self._width() + 1 + need <= _MAX_LINE:
                self._append(word, PLAIN)
                return True
            if foldable and 2 + need <= _MAX_LINE:
                self._newline()
                self._append(word, PLAIN)
                return True
        if self._last == ENCODED or (then and not self._last):
            return False
        if foldable:
            self._newline()
        self._append(word, PLAIN)
        return True

    def _encoded(self, text: str) -> None:
        """Encoded words for `text`, split where the line needs it; their spaces are inside."""
        if self._last == ENCODED:
            text = " " + text
        scheme, encoded = self._encode(text)
        whole = min(_MAX_WORD, _OVERHEAD + len(encoded))
        if self._free_folds and self._last and self._width() + 1 + whole > _MAX_LINE:
            self._newline()
        while text:
            room = min(_MAX_WORD, _MAX_LINE - self._width() - 1)
            if room < _MIN_ROOM and (self._last in (ENCODED, FIXED) or self._free_folds):
                self._newline()
                room = min(_MAX_WORD, _MAX_LINE - self._width() - 1)
            word, text = self._take(text, scheme, max(room, _MIN_ROOM))
            self._append(word, ENCODED)

    def _encode(self, text: str) -> tuple[str, str]:
        """The scheme for `text` and `text` in it: Q, readable, unless B is much shorter
        (names: shorter, to stay one word)."""
        data = text.encode()
        q, b = self._q(data), _b(data)
        if len(b) * 3 < len(q) * 2 if self._prefer_q else len(b) < len(q):
            return "b", b
        return "q", q

    def _take(self, text: str, scheme: str, width: int) -> tuple[str, str]:
        """The longest prefix of `text` (at least one character) whose encoded word fits."""
        encode = self._q if scheme == "q" else _b
        size = 1
        while size < len(text) and _OVERHEAD + len(encode(text[:size + 1].encode())) <= width:
            size += 1
        return f"=?utf-8?{scheme}?{encode(text[:size].encode())}?=", text[size:]

    def _q(self, data: bytes) -> str:
        return "".join("_" if b == 0x20 else chr(b) if b in self._literal else f"={b:02X}"
                       for b in data)

    def _width(self) -> int:
        """The current line's length as written: continuation lines start with a space."""
        return len(self._line) + (1 if self._done else 0)

    def _newline(self) -> None:
        self._done.append(self._line)
        self._line = ""

    def _append(self, token: str, kind: str) -> None:
        self._line = f"{self._line} {token}" if self._line else token
        self._last = kind


def _b(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")

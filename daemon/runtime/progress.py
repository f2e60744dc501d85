"""A one-line progress bar for long commands, redrawn in place on a terminal and silent elsewhere.

Scripts and logs that capture stderr get no carriage-return noise; people watching get a bar.
"""

from __future__ import annotations

import time
from typing import TextIO

_WIDTH = 30
_REDRAW_EVERY = 0.1


def bar(done: int, total: int, what: str) -> str:
    """`[#######-------]  412/1000 messages` — the text of one redraw."""
    filled = _WIDTH * done // total if total else _WIDTH
    return f"[{'#' * filled}{'-' * (_WIDTH - filled)}] {done:>{len(str(total))}}/{total} {what}"


class ProgressLine:
    def __init__(self, stream: TextIO, what: str) -> None:
        self.stream = stream
        self.what = what
        self.enabled = stream.isatty()
        self._last = 0.0

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if done < total and now - self._last < _REDRAW_EVERY:
            return
        self._last = now
        self.stream.write(f"\r{bar(done, total, self.what)}")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()

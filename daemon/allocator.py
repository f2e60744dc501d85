"""glibc's allocator, told to keep fewer arenas in the long-running daemon.

glibc gives a thread its own arena (up to eight per core) whenever the one it used is busy, and
memory freed in one arena is not reused by another. The daemon's threads (the intake, the event
loop, the database workers) ended a 1,000-message run at 235 MB with the default and at 214 MB
with two arenas, at the same speed (bench/ANALYSIS.md). MALLOC_ARENA_MAX, when set, wins.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # mallopt parameter number, from glibc's malloc.h
ARENAS = 2


def limit_arenas(count: int = ARENAS) -> bool:
    """Cap the arenas before threads start; False where the C library is not glibc or the
    administrator chose with MALLOC_ARENA_MAX."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:
        return False
    applied = bool(mallopt(_M_ARENA_MAX, count))
    if applied:
        log.debug("malloc arenas capped at %d", count)
    return applied

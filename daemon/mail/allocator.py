"""glibc's allocator, told to keep fewer arenas and to give back what a one-off load freed.

glibc gives a thread its own arena (up to eight per core) whenever the one it used is busy, and
memory freed in one arena is not reused by another. The daemon's threads (the intake, the event
loop, the database workers) ended a 1,000-message run at 235 MB with the default and at 214 MB
with two arenas, at the same speed (bench/ANALYSIS.md). MALLOC_ARENA_MAX, when set, wins.
glibc also keeps memory a program frees for reuse: loading the language models frees about 40 MB
of buffers that the daemon would hold for its whole life unless it asks for them to be returned.
"""

from __future__ import annotations

import ctypes
import logging
import os

log = logging.getLogger("daemon.allocator")

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


def release_free_memory() -> None:
    """Return freed heap pages to the system (glibc's malloc_trim); a no-op elsewhere."""
    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)
    if trim is not None:
        trim(0)

"""The daemon caps glibc's malloc arenas unless the administrator already chose."""

from __future__ import annotations

import ctypes

import pytest

from daemon.mail.allocator import limit_arenas

_GLIBC = hasattr(ctypes.CDLL(None), "mallopt")


@pytest.mark.skipif(not _GLIBC, reason="the C library is not glibc")
def test_glibc_accepts_the_arena_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert limit_arenas() is True


def test_an_administrators_malloc_arena_max_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "8")
    assert limit_arenas() is False

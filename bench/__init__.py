"""Benchmarks: incidencias against the parse floor and the trackers shops use today (issue 8)."""

import sys
from pathlib import Path

# tests/helpers/mailservers.py (real Dovecot, SMTP sink) is imported, not copied.
_TESTS = str(Path(__file__).resolve().parents[1] / "tests")
if _TESTS not in sys.path:
    sys.path.append(_TESTS)

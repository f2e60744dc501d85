"""Thread-Index values, so Outlook groups our replies with the customer's conversation.

Outlook's index (MS-OXOMSG 2.2.1.3) is a 22-byte header block (a reserved byte, five bytes of
FILETIME, a 16-byte GUID) followed by one 5-byte child block per reply, all base64-encoded.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from datetime import UTC, datetime

_EPOCH_1601 = datetime(1601, 1, 1)
_HEADER = 22
_CHILD = 5


def _filetime(moment: datetime) -> int:
    naive = moment.astimezone(UTC).replace(tzinfo=None) if moment.tzinfo else moment
    return int((naive - _EPOCH_1601).total_seconds() * 10_000_000)


def new_thread_index(seed: str, moment: datetime) -> str:
    """A header block for a conversation we start; the GUID is derived from `seed` so it is stable."""
    stamp = (_filetime(moment) >> 16).to_bytes(6, "big")
    stamp = b"\x01" + stamp[1:]
    guid = hashlib.sha256(seed.encode()).digest()[:16]
    return base64.b64encode(stamp + guid).decode()


def reply_thread_index(parent: str | None, seed: str, moment: datetime) -> str:
    """The parent's index plus one child block; a new index when the parent's is missing or invalid."""
    try:
        blob = base64.b64decode(parent or "", validate=True)
    except (binascii.Error, ValueError):
        blob = b""
    if len(blob) < _HEADER or (len(blob) - _HEADER) % _CHILD:
        return new_thread_index(seed, moment)
    parent_time = int.from_bytes(b"\x00" + blob[1:6], "big") << 16
    delta = max(0, _filetime(moment) - parent_time)
    # Short gaps are counted in 2^18 units of 100 ns; longer ones, flagged by the top bit, in 2^23.
    short = delta < (1 << 49)
    code = (delta >> 18) & 0x7FFFFFFF if short else 0x80000000 | ((delta >> 23) & 0x7FFFFFFF)
    random_nibble = hashlib.sha256(seed.encode()).digest()[0] & 0xF0
    child = code.to_bytes(4, "big") + bytes([random_nibble | ((len(blob) - _HEADER) // _CHILD & 0x0F)])
    return base64.b64encode(blob + child).decode()

"""Tell systemd how the daemon is doing (sd_notify), without linking libsystemd.

The protocol is one datagram of `KEY=value` lines to the socket named in $NOTIFY_SOCKET; a name
starting with '@' is in the abstract namespace. Outside systemd the variable is unset and every
call is a no-op, so the daemon runs the same from a terminal, a test or a unit.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger("daemon.sd_notify")


def socket_address(name: str) -> str:
    """$NOTIFY_SOCKET as a path for socket.connect(): '@name' is the abstract '\\0name'."""
    return "\0" + name[1:] if name.startswith("@") else name


def watchdog_interval(environ: Mapping[str, str], pid: int) -> float | None:
    """Seconds between WATCHDOG=1 pings: half of $WATCHDOG_USEC, as sd_watchdog_enabled advises.

    None when no watchdog is asked for, or when $WATCHDOG_PID names another process (the
    variable was inherited, not meant for us).
    """
    usec = environ.get("WATCHDOG_USEC", "").strip()
    owner = environ.get("WATCHDOG_PID", "").strip()
    if not usec.isdigit() or int(usec) == 0:
        return None
    if owner and owner != str(pid):
        return None
    return int(usec) / 2_000_000


def one_line(text: str) -> str:
    """A STATUS= value must not break the line-based datagram."""
    return " ".join(text.split())


class Notifier:
    """Sends state changes to systemd; failures are logged, never raised: they must not stop mail."""

    def __init__(self, socket_name: str | None) -> None:
        self.socket_name = socket_name or None
        self._socket: socket.socket | None = None

    @classmethod
    def from_environment(cls) -> Notifier:
        return cls(os.environ.get("NOTIFY_SOCKET"))

    @property
    def enabled(self) -> bool:
        return self.socket_name is not None

    def send(self, **fields: str) -> bool:
        """Send `READY="1"`, `STATUS="..."` … as one datagram; True when systemd got it."""
        if self.socket_name is None or not fields:
            return False
        payload = "\n".join(f"{key}={one_line(value)}" for key, value in fields.items())
        try:
            if self._socket is None:
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._socket.sendto(payload.encode(), socket_address(self.socket_name))
        except OSError as exc:
            log.debug("sd_notify to %s failed: %s", self.socket_name, exc)
            return False
        return True

    def ready(self, status: str) -> bool:
        return self.send(READY="1", STATUS=status)

    def status(self, status: str) -> bool:
        return self.send(STATUS=status)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG="1")

    def stopping(self, status: str) -> bool:
        return self.send(STOPPING="1", STATUS=status)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None

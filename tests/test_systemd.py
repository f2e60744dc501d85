"""The daemon under systemd: the unit verifies, sd_notify reaches the socket, SIGHUP reloads."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from helpers.harness import (
    SHOP_USER,
    customer_email,
    start_daemon,
    stop_daemon,
    tickets,
    to_customers,
    wait_until,
    write_config,
)
from helpers.mailservers import Dovecot, SmtpSink

from daemon.config import Config
from daemon.runtime.health import Snapshot, status_line
from daemon.runtime.reload import merge, needing_restart
from daemon.runtime.sd_notify import Notifier, socket_address, watchdog_interval

ROOT = Path(__file__).resolve().parents[1]
UNIT = ROOT / "systemd" / "incidencias.service"
BUILTIN_ACK = ROOT / "templates" / "es" / "acknowledgement.j2"


class NotifySocket:
    """A datagram socket standing in for systemd's, in the abstract namespace like systemd's own."""

    def __init__(self) -> None:
        self.name = f"@incidencias-test-{uuid.uuid4().hex}"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(socket_address(self.name))
        self.sock.settimeout(0.2)
        self.messages: list[dict[str, str]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)
        self._thread.start()

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._lock:
                self.messages.append(fields)

    def seen(self, key: str, value: str | None = None) -> list[dict[str, str]]:
        with self._lock:
            return [m for m in self.messages if key in m and (value is None or m[key] == value)]

    def close(self) -> None:
        self._closed.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def notify_socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[NotifySocket]:
    """$NOTIFY_SOCKET and a 1 s watchdog for the daemons the test starts (start_daemon copies os.environ)."""
    receiver = NotifySocket()
    monkeypatch.setenv("NOTIFY_SOCKET", receiver.name)
    monkeypatch.setenv("WATCHDOG_USEC", "1000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    try:
        yield receiver
    finally:
        receiver.close()


# --- the pure parts ----------------------------------------------------------------------------

def test_an_abstract_socket_name_is_addressed_with_a_leading_nul() -> None:
    assert socket_address("@/org/freedesktop/systemd1/notify") == "\0/org/freedesktop/systemd1/notify"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"


def test_watchdog_pings_at_half_the_interval_and_only_for_the_process_it_was_meant_for() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "120000000"}, pid=42) == 60.0
    assert watchdog_interval({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "42"}, pid=42) == 60.0
    assert watchdog_interval({"WATCHDOG_USEC": "120000000", "WATCHDOG_PID": "7"}, pid=42) is None
    assert watchdog_interval({}, pid=42) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}, pid=42) is None


def test_outside_systemd_notifying_does_nothing_and_a_vanished_socket_is_not_an_error() -> None:
    assert not Notifier(None).ready("idle")
    assert not Notifier(f"@incidencias-nobody-{uuid.uuid4().hex}").ready("idle")


def test_a_status_line_cannot_inject_another_notify_field() -> None:
    receiver = NotifySocket()
    try:
        assert Notifier(receiver.name).status("idle\nREADY=1")
        wait_until(lambda: bool(receiver.messages), 5, "the datagram")
        assert receiver.messages == [{"STATUS": "idle READY=1"}]
    finally:
        receiver.close()


def test_status_line_counts_open_tickets_and_the_outbox() -> None:
    now = datetime(2026, 3, 2, 12, 0)
    quiet = Snapshot({"open": 12, "waiting": 0, "closed": 40})
    assert status_line("idle", quiet, now) == "idle, 12 open tickets, outbox empty"
    busy = Snapshot({"open": 1, "waiting": 2}, outbox_pending=3, outbox_failed=1,
                    oldest_pending=now - timedelta(minutes=4))
    assert status_line("IMAP unreachable", busy, now) == (
        "IMAP unreachable, 1 open ticket, 2 waiting on the customer, "
        "3 emails in the outbox (oldest 4m), 1 refused by the server")


def _config(**sections: dict[str, object]) -> Config:
    data: dict[str, object] = {
        "shop": {"name": "Tienda", "address": "incidencias@example.com"},
        "imap": {"host": "imap.example.com", "username": "u"},
        "smtp": {"host": "smtp.example.com"},
    }
    for name, values in sections.items():
        base = data.get(name, {})
        assert isinstance(base, dict)
        data[name] = {**base, **values}
    return Config.model_validate(data)


def test_reload_takes_wording_and_timing_and_leaves_connections_for_a_restart() -> None:
    running = _config()
    new = _config(shop={"signature": "Ana, atención al cliente", "address": "otra@example.com"},
                  imap={"host": "imap2.example.com", "username": "u"},
                  updates={"every": "2d", "sweep_every": "5m"},
                  closing={"discount_percent": 15, "code_prefix": "NUEVO"},
                  logging={"level": "debug"})

    merged = merge(running, new)

    assert merged.shop.signature == "Ana, atención al cliente"
    assert merged.updates.every == timedelta(days=2)
    assert merged.closing.discount_percent == 15
    assert merged.logging.level == "debug"
    assert merged.shop.address == running.shop.address
    assert merged.imap == running.imap
    assert merged.updates.sweep_every == running.updates.sweep_every
    assert merged.closing.code_prefix == running.closing.code_prefix
    assert needing_restart(merged, new) == [
        "[shop] address", "[imap] host", "[updates] sweep_every", "[closing] code_prefix"]


# --- the unit file -----------------------------------------------------------------------------

def _systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("systemd-analyze missing: scripts/setup installs Debian's systemd package")
        pytest.skip("systemd-analyze not installed (apt-get install systemd)")
    return found


def test_the_unit_file_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = _systemd_analyze()
    # verify checks that ExecStart exists: point it at this checkout's console script.
    executable = Path(sys.executable).with_name("incidencias")
    assert executable.exists(), f"{executable} missing: pip install -e ."
    text = UNIT.read_text()
    assert "ExecStart=/opt/incidencias/bin/incidencias " in text
    unit = tmp_path / "incidencias.service"
    unit.write_text(text.replace("/opt/incidencias/bin/incidencias", str(executable)))

    result = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                            timeout=60)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "incidencias.service" not in result.stderr, result.stderr


def test_the_unit_keeps_its_sandbox_exposure_low() -> None:
    analyze = _systemd_analyze()
    # The threshold is in tenths: 20 means an overall exposure of 2.0, where README says 1.1.
    result = subprocess.run([analyze, "security", "--offline=true", "--threshold=20", str(UNIT)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    assert "Overall exposure level for incidencias.service: 1." in result.stdout


def test_the_daemon_works_with_write_execute_memory_refused(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    """MemoryDenyWriteExecute= in the unit: the kernel's MDWE prctl enforces the same rule here."""
    probe = ("import ctypes, mmap, sys\n"
             "if ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) != 0: sys.exit(77)\n"
             "try:\n"
             "    mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)\n"
             "except OSError:\n"
             "    pass\n"
             "else:\n"
             "    sys.exit(78)\n"
             "from daemon.cli import main\n"
             "sys.exit(main(sys.argv[1:]))\n")
    imap.append(SHOP_USER, customer_email("Pedido roto", "Llegó roto el jarrón."))
    config = write_config(tmp_path, imap, smtp_sink)

    result = subprocess.run([sys.executable, "-c", probe, "-c", str(config), "run", "--once"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)

    if result.returncode == 77:
        pytest.skip("this kernel has no PR_SET_MDWE")
    assert result.returncode == 0, result.stderr
    assert len(to_customers(smtp_sink)) == 1


# --- the daemon, end to end --------------------------------------------------------------------

def test_daemon_reports_ready_status_and_watchdog_then_stops_cleanly_on_sigterm(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink, notify_socket: NotifySocket) -> None:
    imap.append(SHOP_USER, customer_email("Pedido incompleto", "Falta una taza en mi pedido."))
    config = write_config(tmp_path, imap, smtp_sink)
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)
    try:
        wait_until(lambda: bool(notify_socket.seen("READY", "1")), 30, "READY=1")
        wait_until(lambda: len(notify_socket.seen("WATCHDOG", "1")) >= 2, 10, "two watchdog pings")
        wait_until(lambda: len(to_customers(smtp_sink)) == 1, 30, "the acknowledgement")
        ready = notify_socket.seen("READY", "1")[0]
        assert ready["STATUS"].startswith("idle, "), ready
        # SIGHUP refreshes the status at once instead of at the next 10 s tick.
        daemon.send_signal(signal.SIGHUP)
        wait_until(lambda: any(m["STATUS"].startswith("idle, 1 open ticket, outbox empty")
                               for m in notify_socket.seen("STATUS")), 15, "a status with the ticket")
        imap.append(SHOP_USER, customer_email("Otra cosa", "Y la factura.", sender="luis@example.net"))
        start = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(10) == 0, log.read_text()
        assert time.monotonic() - start < 10
    finally:
        stop_daemon(daemon)
    assert notify_socket.seen("STOPPING", "1"), notify_socket.messages
    # Nothing lost: what arrived is either handled (ticket and acknowledgement) or still in INBOX.
    handled = len(tickets(config))
    assert handled + len(imap.folder_uids(SHOP_USER, "INBOX")) == 2
    assert len(to_customers(smtp_sink)) == handled
    assert "Traceback" not in log.read_text()


def _override(directory: Path, marker: str) -> None:
    target = directory / "es" / "acknowledgement.j2"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(BUILTIN_ACK.read_text().replace("Un saludo,", f"{marker}\nUn saludo,"))


def test_sighup_reloads_a_changed_template_and_a_broken_one_keeps_the_old_wording(
        tmp_path: Path, imap: Dovecot, smtp_sink: SmtpSink) -> None:
    templates = tmp_path / "plantillas"
    _override(templates, "Versión uno de la tienda.")
    config = write_config(tmp_path, imap, smtp_sink, extra=f'\n[templates]\ndirectory = "{templates}"\n')
    log = tmp_path / "daemon.log"
    daemon = start_daemon(config, log)

    def acknowledgement(n: int) -> str:
        wait_until(lambda: len(to_customers(smtp_sink)) >= n, 30, f"acknowledgement {n}")
        body = to_customers(smtp_sink)[n - 1].message.get_body(("plain",))
        assert body is not None
        return str(body.get_content())

    def reloads(outcome: str) -> int:
        return log.read_text().count(outcome)

    try:
        imap.append(SHOP_USER, customer_email("Pedido 1", "No llega.", sender="a@example.net"))
        assert "Versión uno de la tienda." in acknowledgement(1)

        _override(templates, "Versión dos de la tienda.")
        daemon.send_signal(signal.SIGHUP)
        wait_until(lambda: reloads("reloaded ") == 1, 30, "the reload")
        imap.append(SHOP_USER, customer_email("Pedido 2", "No llega.", sender="b@example.net"))
        assert "Versión dos de la tienda." in acknowledgement(2)

        (templates / "es" / "acknowledgement.j2").write_text("{% block subject %}{{ nope }")
        daemon.send_signal(signal.SIGHUP)
        wait_until(lambda: reloads("reload refused") >= 1, 30, "the refused reload")
        imap.append(SHOP_USER, customer_email("Pedido 3", "No llega.", sender="c@example.net"))
        assert "Versión dos de la tienda." in acknowledgement(3)
    finally:
        assert stop_daemon(daemon) == 0, log.read_text()
    assert "acknowledgement.j2" in log.read_text().split("reload refused", 1)[1]


class _Imap:
    def __init__(self) -> None:
        self.last_success_at: datetime | None = None
        self.consecutive_failures = 0


def test_ready_waits_for_both_smtp_and_imap_and_the_status_says_what_is_missing(tmp_path: Path) -> None:
    from daemon.runtime.supervision import Supervision
    from daemon.storage import db

    engine = db.make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    db.upgrade(engine)
    receiver = NotifySocket()
    imap = _Imap()
    smtp_answers: list[bool] = [False]

    async def probe_smtp() -> None:
        if not smtp_answers[-1]:
            raise ConnectionRefusedError("SMTP down")

    supervision = Supervision(Notifier(receiver.name), db.session_factory(engine), imap, probe_smtp,
                              healthy=lambda: True)

    async def scenario() -> None:
        stop = asyncio.Event()
        ready = asyncio.ensure_future(supervision.announce_ready(stop))
        await asyncio.sleep(0.3)
        assert supervision.activity() == "starting: waiting for IMAP and SMTP"
        imap.last_success_at = datetime.now(UTC).replace(tzinfo=None)
        await asyncio.sleep(0.3)
        assert not ready.done(), "READY before SMTP answered"
        smtp_answers.append(True)
        await asyncio.wait_for(ready, 5)
        imap.consecutive_failures = 3
        assert supervision.activity().startswith("IMAP unreachable (last contact")

    try:
        asyncio.run(scenario())
        wait_until(lambda: bool(receiver.seen("READY")), 5, "READY=1")
        assert receiver.seen("READY", "1")[0]["STATUS"] == "idle, 0 open tickets, outbox empty"
    finally:
        receiver.close()
        engine.dispose()

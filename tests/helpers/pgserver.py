"""A throwaway PostgreSQL server for tests: Debian's binaries, a temp data directory, loopback only.

The tests start their own server rather than expect one, so `.ci/run` on a bare machine and a
developer's laptop behave alike and nothing outside a temp directory is touched. Durability is
switched off (fsync, full-page writes): the data dies with the test session anyway.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from glob import glob
from pathlib import Path
from typing import Any

START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
DRIVER = "psycopg"
# Not UTC on purpose: the daemon stores naive UTC and must not depend on the server's zone.
SERVER_TIMEZONE = "Europe/Madrid"
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_ENV_SELECTOR = "INCIDENCIAS_TEST_DATABASE"


class PostgresError(RuntimeError):
    """PostgreSQL failed to start or to answer; the message carries its log."""


def find_postgres() -> Path | None:
    """The directory holding initdb and postgres: Debian's newest version first, then PATH."""
    candidates = sorted(glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda path: _version(Path(path).parent.parent.name), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve()))
    for initdb in candidates:
        directory = Path(initdb).parent
        if os.access(directory / "postgres", os.X_OK):
            return directory
    return None


def driver_installed() -> bool:
    return importlib.util.find_spec("psycopg") is not None


def selected() -> bool:
    """Whether INCIDENCIAS_TEST_DATABASE asks the end-to-end tests to run on PostgreSQL."""
    value = os.environ.get(_ENV_SELECTOR, "").strip().lower()
    if value in {"", "sqlite"}:
        return False
    if value in {"postgresql", "postgres", "pg"}:
        return True
    raise ValueError(f"{_ENV_SELECTOR}={value!r}: expected 'sqlite' or 'postgresql'")


def _version(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", name)) or (0,)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


_PR_SET_PDEATHSIG = 1
_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent() -> None:
    """In the server's process: a fast shutdown when the test process dies, even by SIGKILL.

    Runs after the switch to the server's account, which would have cleared the setting.
    """
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGINT)


def _server_account() -> pwd.struct_passwd | None:
    """The account the server runs as when we are root (postgres refuses root); None otherwise."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise PostgresError("running as root and neither a 'postgres' nor a 'nobody' account exists")


class PostgresServer:
    """One private PostgreSQL cluster on 127.0.0.1 (trust auth, loopback only) under a temp dir.

    As root, initdb and postgres run as the `postgres` account (Debian's package creates it), the
    temp dir owned by it; otherwise they run as ourselves. `url(name)` gives a SQLAlchemy URL for
    the psycopg driver; `create_database(name)` makes an empty database and returns its URL.
    """

    host = "127.0.0.1"
    user = "postgres"

    def __init__(self, binaries: Path | None = None, *, max_connections: int = 300) -> None:
        self.binaries = binaries or find_postgres()
        self.max_connections = max_connections
        self.port = _free_port()
        self.root: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._account = _server_account()
        self._lock = threading.Lock()
        self._port_proven = False

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path | None:
        return None if self.root is None else self.root / "postgres.log"

    def log_text(self) -> str:
        path = self.log_path
        if path is None or not path.exists():
            return ""
        return path.read_text(errors="replace")

    def start(self) -> None:
        """initdb once, then start the server and return when it accepts connections."""
        if self.running:
            return
        if self.binaries is None:
            raise PostgresError("PostgreSQL not found: apt-get install postgresql")
        root = self._prepare()
        data = root / "data"
        if not (data / "PG_VERSION").exists():
            self._run([str(self.binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", self.user,
                       "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"])
        # The port was free when chosen; if someone took it since, choose again — but only before
        # the first success, since URLs handed out name the port.
        attempts = 1 if self._port_proven else 3
        for attempt in range(attempts):
            log_offset = len(self.log_text())
            self._spawn(self.binaries / "postgres", root)
            try:
                self._wait_ready()
            except PostgresError:
                if attempt + 1 == attempts or "could not bind" not in self.log_text()[log_offset:]:
                    raise
                self.port = _free_port()
                continue
            self._port_proven = True
            return

    def _spawn(self, postgres: Path, root: Path) -> None:
        with (root / "postgres.log").open("ab") as log:
            self._proc = subprocess.Popen(
                [str(postgres), "-D", str(root / "data"), "-p", str(self.port),
                 "-c", f"listen_addresses={self.host}", "-c", f"unix_socket_directories={root}",
                 "-c", f"max_connections={self.max_connections}", "-c", "fsync=off",
                 "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                 "-c", f"timezone={SERVER_TIMEZONE}", "-c", "log_min_messages=warning"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, preexec_fn=_die_with_parent, **self._as_account())

    def stop(self) -> None:
        """Fast shutdown (SIGINT): sessions are ended, the data stays for a later `start()`."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT)

    def close(self) -> None:
        """Stop the server and remove its temp directory."""
        self.stop()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+{DRIVER}://{self.user}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str, template: str | None = None) -> str:
        """A new database (optionally a copy of `template`, which must have no other sessions)."""
        for value in (name, template):
            if value is not None and not _NAME.fullmatch(value):
                raise ValueError(f"not a plain database name: {value!r}")
        statement = f'CREATE DATABASE "{name}"'
        if template is not None:
            statement += f' TEMPLATE "{template}" STRATEGY FILE_COPY'
        with self._lock:
            self.execute(statement)
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database even while daemons are still connected to it."""
        if not _NAME.fullmatch(name):
            raise ValueError(f"not a plain database name: {name!r}")
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def execute(self, statement: str, dbname: str = "postgres") -> None:
        """Run one statement in autocommit mode (CREATE/DROP DATABASE cannot run in a transaction)."""
        import psycopg

        with psycopg.connect(host=self.host, port=self.port, user=self.user, dbname=dbname,
                             autocommit=True, connect_timeout=10) as connection:
            connection.execute(statement.encode())

    def _prepare(self) -> Path:
        if self.root is None:
            self.root = Path(tempfile.mkdtemp(prefix="incidencias-pg-"))
            if self._account is not None:
                os.chown(self.root, self._account.pw_uid, self._account.pw_gid)
        return self.root

    def _as_account(self) -> dict[str, Any]:
        if self._account is None:
            return {}
        account = self._account
        env = {"PATH": os.defpath, "HOME": str(self.root), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": [], "env": env,
                "cwd": str(self.root)}

    def _run(self, command: list[str]) -> None:
        result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                                check=False, **self._as_account())
        if result.returncode != 0:
            raise PostgresError(f"{Path(command[0]).name} exited {result.returncode}:\n"
                                f"{result.stdout}{result.stderr}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                raise PostgresError(f"postgres exited during start-up:\n{self.log_text()}")
            try:
                self.execute("SELECT 1")
            except Exception:  # psycopg.OperationalError while it starts; imported lazily
                time.sleep(0.05)
                continue
            return
        self.stop()
        raise PostgresError(f"postgres did not accept connections within {START_TIMEOUT}s:\n"
                            f"{self.log_text()}")


_shared: PostgresServer | None = None
_shared_lock = threading.Lock()


def shared_server() -> PostgresServer:
    """The session's one server, started on first use and stopped when the process exits.

    The `postgres` fixture and tests/helpers/harness.py (for INCIDENCIAS_TEST_DATABASE=postgresql) both use
    it, so a session starts one cluster however its databases are asked for.
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            server = PostgresServer()
            server.start()
            atexit.register(server.close)
            _shared = server
        elif not _shared.running:
            _shared.start()
        return _shared


_counter = 0


def unique_name(prefix: str = "t") -> str:
    """A database name no other test of this or a parallel session has taken."""
    global _counter
    with _shared_lock:
        _counter += 1
        return f"{prefix}_{os.getpid()}_{_counter}"

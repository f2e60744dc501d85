"""Real mail servers for end-to-end tests: a private Dovecot (IMAP + LMTP), a private Postfix
delivering into it, and an SMTP sink.

End-to-end tests talk to real servers because fakes hide exactly the protocol details (IDLE
timing, UIDs, folder separators, SMTP replies) that break a mail daemon in production.
"""

from __future__ import annotations

import contextlib
import grp
import json
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from string import Template
from typing import Any

import imapclient
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

# "tienda2" is the second shop's mailbox in the several-mailboxes tests.
DEFAULT_USERS = ("incidencias", "tienda2", "agent1", "agent2", "customer1", "customer2")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0
IMAP_TIMEOUT = 10.0
# LIST shows implied parents (Tickets for Tickets.Cerrados) that do not exist and cannot be deleted.
# aiosmtpd logs every SMTP command at INFO from its own thread; that drowns failure reports and can
# outlive the stream pytest captured it into.
logging.getLogger("mail.log").setLevel(logging.WARNING)

_PLACEHOLDER_FLAGS = {b"\\NonExistent", b"\\Noselect"}

# Everything lives under ROOT, so several instances (xdist workers, parallel sessions) coexist.
_CONFIG = Template(
    """\
instance_name = dovecot-test-$imap_port
login_greeting = $token
base_dir = $root/run
state_dir = $root/state
log_path = $root/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mailbox_idle_check_interval = 1 secs
default_internal_user = $user
default_internal_group = $group
default_login_user = $user
mail_uid = $user
mail_gid = $group
first_valid_uid = 1
first_valid_gid = 1
mail_home = $root/mail/%n
mail_location = maildir:~/Maildir
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%n $root/users
}
userdb {
  driver = passwd-file
  args = username_format=%n $root/users
}
service imap-login {
  chroot =
  service_count = 0
  process_min_avail = 1
  inet_listener imap {
    port = $imap_port
  }
  inet_listener imaps {
    port = $imaps_port
    ssl = yes
  }
}
service anvil {
  chroot =
}
service auth {
  client_limit = 2000
}
# Reusing login and imap processes (safe: every user shares one uid) makes a login ~2 ms, not ~12.
service imap {
  service_count = 0
  process_min_avail = 2
}
service lmtp {
  inet_listener lmtp {
    port = $lmtp_port
  }
}
$ssl
"""
)

_SSL_ON = """\
ssl = yes
ssl_cert = <{cert}
ssl_key = <{key}
"""


class DovecotError(RuntimeError):
    """Dovecot failed to start; the message carries its log so the cause is visible in pytest."""


def find_dovecot() -> str | None:
    """Path of the dovecot binary; also searches /usr/sbin, which non-root PATHs often lack."""
    path = os.environ.get("PATH", os.defpath) + os.pathsep + "/usr/sbin:/usr/local/sbin:/sbin"
    return shutil.which("dovecot", path=path)


def free_port() -> int:
    """A loopback port that was free a moment ago (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def end_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to a server's whole process group, SIGKILL if it is not gone within STOP_TIMEOUT."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def to_crlf(raw: bytes) -> bytes:
    """CRLF line ends, as an MTA puts a message on the wire (corpus files are often LF-only)."""
    return re.sub(rb"\r?\n", b"\r\n", raw)


def _mail_account() -> tuple[str, str]:
    """User and group Dovecot's unprivileged processes run as: ourselves, or nobody when root."""
    if os.geteuid() == 0:
        return "nobody", grp.getgrgid(pwd.getpwnam("nobody").pw_gid).gr_name
    return pwd.getpwuid(os.geteuid()).pw_name, grp.getgrgid(os.getegid()).gr_name


def _chown_tree(root: Path, user: str, group: str) -> None:
    shutil.chown(root, user, group)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            shutil.chown(Path(dirpath) / name, user, group)


class Dovecot:
    """A private Dovecot on 127.0.0.1 with a config in a short temp dir; works as root and non-root.

    As root the mail processes run as nobody (Dovecot refuses root for mail access). The
    directory is made under /tmp with a short name because Unix socket paths under base_dir
    must stay below 108 bytes. Ports are chosen once and kept across `restart()`. Users log
    in as `name` or `name@any.domain` (the domain is ignored), like a daemon configured with
    `username = "incidencias@example.com"`.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        users: Sequence[str] = DEFAULT_USERS,
        password: str = "secret",
        *,
        tls: bool = False,
        domain: str = "example.com",
    ) -> None:
        for value in (*users, password):
            if not value or any(ch in value for ch in ":\r\n@"):
                raise ValueError(f"unusable user name or password for a passwd-file: {value!r}")
        self.users = tuple(users)
        self.password = password
        self.domain = domain
        self.tls = tls
        self.port = free_port()
        self.lmtp_port = free_port()
        self.tls_port: int | None = free_port() if tls else None
        self.cafile: str | None = None
        self.root: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._ports_proven = False

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start Dovecot and return once its own greeting (unique token) is served."""
        if self.running:
            return
        binary = find_dovecot()
        if binary is None:
            raise DovecotError("dovecot binary not found (apt-get install dovecot-imapd dovecot-lmtpd)")
        root = self._prepare()
        attempts = 1 if self._ports_proven else 3
        for attempt in range(attempts):
            token = "dovecot-ready-" + secrets.token_hex(8)
            log_offset = len(self.log_text())
            self._write_config(root, token)
            # stdout/stderr holds what Dovecot says before its log process is up (bind errors).
            with (root / "stdout.log").open("wb") as out:
                self._proc = subprocess.Popen(
                    [binary, "-F", "-c", str(root / "dovecot.conf")],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if self._wait_ready(token):
                self._ports_proven = True
                return
            self.stop()
            output = (
                f"--- dovecot.log ---\n{self.log_text()[log_offset:]}\n"
                f"--- stdout/stderr ---\n{(root / 'stdout.log').read_text(errors='replace')}"
            )
            if attempt + 1 < attempts and "Address already in use" in output:
                self.port, self.lmtp_port = free_port(), free_port()
                self.tls_port = free_port() if self.tls else None
                continue
            raise DovecotError(f"dovecot did not become ready on {self.host}:{self.port}\n{output}")

    def stop(self) -> None:
        """Terminate the whole process group (master alone takes ~1 s to wind down its children)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        end_group(proc)

    def restart(self) -> None:
        """Stop and start again on the same ports and mail data, as a server outage would."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and delete the config and mail directory."""
        self.stop()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> Dovecot:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def address(self, user: str) -> str:
        """The email address LMTP delivers to `user`'s mailbox (Dovecot ignores the domain)."""
        return user if "@" in user else f"{user}@{self.domain}"

    def client(self, user: str) -> imapclient.IMAPClient:
        """A logged-in IMAP connection over the plain port; the caller logs out."""
        client = imapclient.IMAPClient(self.host, self.port, ssl=False, timeout=IMAP_TIMEOUT)
        try:
            client.login(user, self.password)
        except Exception:
            client.shutdown()
            raise
        return client

    def append(self, user: str, raw: bytes, folder: str = "INBOX") -> None:
        """Store one message, creating `folder` if needed; no MTA involved, so no Delivered-To."""
        self.append_many(user, [raw], folder)

    def append_many(self, user: str, raws: Sequence[bytes], folder: str = "INBOX") -> None:
        """Store many messages in one MULTIAPPEND command (about 1 ms per message)."""
        if not raws:
            return
        with self.client(user) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            client.multiappend(folder, [to_crlf(raw) for raw in raws])

    def deliver(self, rcpt_user: str, raw: bytes, mail_from: str = "customer@example.net") -> None:
        """Deliver through LMTP like a real MTA (adds Return-Path, Delivered-To, Received).

        One recipient per transaction: LMTP answers DATA once per recipient and smtplib
        reads only one reply.
        """
        with smtplib.LMTP(self.host, self.lmtp_port, timeout=IMAP_TIMEOUT) as lmtp:
            lmtp.sendmail(mail_from, [self.address(rcpt_user)], to_crlf(raw))

    def folder_uids(self, user: str, folder: str) -> list[int]:
        with self.client(user) as client:
            client.select_folder(folder, readonly=True)
            return sorted(int(uid) for uid in client.search("ALL"))

    def fetch_all(self, user: str, folder: str) -> list[bytes]:
        """Every message of `folder` in UID order, without setting \\Seen."""
        with self.client(user) as client:
            client.select_folder(folder, readonly=True)
            uids = sorted(client.search("ALL"))
            if not uids:
                return []
            data = client.fetch(uids, ["BODY.PEEK[]"])
            return [bytes(data[uid][b"BODY[]"]) for uid in uids]

    def decoded_headers(self, user: str, names: Sequence[str], folder: str = "INBOX"
                        ) -> list[dict[str, str]]:
        """Dovecot's own decoding (RFC 2047 → UTF-8) of header fields of every message in
        `folder`, in UID order: a second decoder, independent of Python's, to check ours against."""
        fields = ["uid", *(f"hdr.{name.lower()}.utf8" for name in names)]
        result = subprocess.run(
            ["doveadm", "-f", "tab", "-c", str(self._conf()), "fetch", "-u", user, " ".join(fields),
             "mailbox", folder, "all"],
            capture_output=True, text=True, timeout=IMAP_TIMEOUT, check=True)
        rows = [line.split("\t") for line in result.stdout.splitlines()[1:]]
        return [dict(zip(names, row[1:], strict=True)) for row in sorted(rows, key=lambda r: int(r[0]))]

    def folders(self, user: str) -> list[str]:
        with self.client(user) as client:
            return [str(name) for _flags, _delim, name in client.list_folders()]

    def reset_user(self, user: str) -> None:
        """Empty INBOX, delete every other folder and subscription: a clean mailbox per test."""
        with self.client(user) as client:
            names = [
                str(name)
                for flags, _delim, name in client.list_folders()
                if str(name).upper() != "INBOX" and not _PLACEHOLDER_FLAGS.intersection(flags)
            ]
            # Longest first deletes children before parents; Dovecot refuses to delete a parent.
            for name in sorted(names, key=len, reverse=True):
                client.delete_folder(name)
            for _flags, _delim, name in client.list_sub_folders():
                if str(name).upper() != "INBOX":
                    client.unsubscribe_folder(name)
            client.select_folder("INBOX")
            uids = client.search("ALL")
            if uids:
                client.delete_messages(uids)
                client.expunge()

    def _conf(self) -> Path:
        if self.root is None:
            raise DovecotError("dovecot is not started")
        return self.root / "dovecot.conf"

    def log_text(self) -> str:
        if self.root is None or not (self.root / "dovecot.log").exists():
            return ""
        return (self.root / "dovecot.log").read_text(errors="replace")

    def _prepare(self) -> Path:
        """Create the private directory once; later starts (restarts) reuse it and its mail."""
        if self.root is not None:
            return self.root
        root = Path(tempfile.mkdtemp(prefix="dc-", dir="/tmp"))
        # 0711: the unprivileged auth and mail processes must traverse it (mkdtemp gives 0700).
        root.chmod(0o711)
        (root / "mail").mkdir()
        lines = "".join(f"{user}:{{PLAIN}}{self.password}::\n" for user in self.users)
        (root / "users").write_text(lines, encoding="utf-8")
        if self.tls:
            self.cafile = str(self._make_certificate(root))
        if os.geteuid() == 0:
            _chown_tree(root, *_mail_account())
        self.root = root
        return root

    def _make_certificate(self, root: Path) -> Path:
        """A self-signed certificate for localhost/127.0.0.1 that clients trust via `cafile`."""
        cert, key = root / "cert.pem", root / "key.pem"
        subprocess.run(
            [
                "openssl",
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                str(key),
                "-out",
                str(cert),
                "-days",
                "7",
                "-subj",
                "/CN=localhost",
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
            check=True,
            capture_output=True,
        )
        return cert

    def _write_config(self, root: Path, token: str) -> None:
        user, group = _mail_account()
        ssl = _SSL_ON.format(cert=root / "cert.pem", key=root / "key.pem") if self.tls else "ssl = no"
        (root / "dovecot.conf").write_text(
            _CONFIG.substitute(
                root=root,
                token=token,
                user=user,
                group=group,
                imap_port=self.port,
                imaps_port=self.tls_port or 0,
                lmtp_port=self.lmtp_port,
                ssl=ssl,
            ),
            encoding="utf-8",
        )

    def _wait_ready(self, token: str) -> bool:
        """Dovecot greets only once auth is up; the token proves the greeting is ours."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc is None or self._proc.poll() is not None:
                return False
            if token.encode() in _read_greeting(self.host, self.port):
                return True
            time.sleep(0.005)
        return False


def _read_greeting(host: str, port: int) -> bytes:
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            greeting = b""
            while not greeting.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    break
                greeting += chunk
            return greeting
    except OSError:
        return b""


_POSTFIX_MAIN = Template(
    """\
compatibility_level = 3.6
queue_directory = $root/queue
data_directory = $root/data
mail_owner = $owner
setgid_group = $setgid
myhostname = mx.$domain
mydomain = $domain
myorigin = $domain
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
# Every address of $domain goes to Dovecot over LMTP, which refuses the ones it does not know:
# Postfix then returns the mail to its sender with its own delivery status notification.
relay_domains = $domain
relay_recipient_maps =
relay_transport = lmtp:inet:127.0.0.1:$lmtp_port
default_transport = error:5.1.2 this test mail server delivers only to $domain
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtpd_banner = $$myhostname ESMTP $token
maillog_file = $root/postfix.log
maillog_file_prefixes = $root
biff = no
smtputf8_enable = no
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
"""
)

# The services a queue needs, none chrooted (the queue directory holds no copy of /etc).
_POSTFIX_MASTER = Template(
    """\
127.0.0.1:$port inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
lmtp unix - - n - - lmtp
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
postlog unix-dgram n - n - 1 postlogd
"""
)


class PostfixError(RuntimeError):
    """Postfix failed to start or to answer; the message carries its log."""


def find_postfix() -> str | None:
    """Path of Postfix's master daemon when Debian's postfix package is installed, else None."""
    path = Path("/usr/lib/postfix/sbin/master")
    return str(path) if path.is_file() and shutil.which("postfix", path=_SBIN_PATH) else None


_SBIN_PATH = os.environ.get("PATH", os.defpath) + os.pathsep + "/usr/sbin:/usr/local/sbin:/sbin"


class Postfix:
    """A private Postfix on a free loopback port, delivering `domain` by LMTP into `dovecot`.

    Its config, queue and data directories live under one temp directory; no system service
    or file is touched. The master daemon runs in the foreground in its own process group, so
    stop() ends it and every child with it. Needs root (Postfix's master does).
    """

    host = "127.0.0.1"

    def __init__(self, dovecot: Dovecot) -> None:
        self.dovecot = dovecot
        self.domain = dovecot.domain
        self.port = free_port()
        self.root: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        if self.running:
            return
        master = find_postfix()
        if master is None:
            raise PostfixError("postfix not installed (apt-get install postfix)")
        if os.geteuid() != 0:
            raise PostfixError("postfix's master daemon needs root")
        root = self._prepare()
        token = "postfix-ready-" + secrets.token_hex(8)
        self._write_config(root, token)
        # check creates the queue's directories with Postfix's own owners and modes.
        try:
            self._postfix("check")
        except PostfixError:
            self.close()
            raise
        with (root / "stdout.log").open("wb") as out:
            self._proc = subprocess.Popen([master, "-c", str(root / "etc"), "-d"],
                                          stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if not self.running:
                break
            if token.encode() in _read_greeting(self.host, self.port):
                return
            time.sleep(0.02)
        self.stop()
        raise PostfixError(f"postfix did not become ready on {self.host}:{self.port}\n"
                           f"--- postfix.log ---\n{self.log_text()}\n--- stdout/stderr ---\n"
                           f"{(root / 'stdout.log').read_text(errors='replace')}")

    def stop(self) -> None:
        """SIGTERM to the whole process group: master and every service it started."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        end_group(proc)
        # Children may outlive master by a moment; none may outlive the test.
        deadline = time.monotonic() + STOP_TIMEOUT
        while _group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    def close(self) -> None:
        self.stop()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def __enter__(self) -> Postfix:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def send(self, raw: bytes, mail_from: str, rcpt_tos: Sequence[str]) -> None:
        """Submit a message over SMTP, as a customer's provider hands mail to the shop's server."""
        with smtplib.SMTP(self.host, self.port, timeout=IMAP_TIMEOUT) as smtp:
            smtp.sendmail(mail_from, list(rcpt_tos), to_crlf(raw))

    def queue(self) -> list[dict[str, Any]]:
        """What is still in Postfix's queue (postqueue -j): empty once everything is delivered
        or returned."""
        result = self._postqueue("-j")
        return [json.loads(line) for line in result.splitlines() if line.strip()]

    def flush(self) -> None:
        """Ask Postfix to try deferred mail now (postqueue -f)."""
        self._postqueue("-f")

    def wait_until_idle(self, timeout: float = 20.0) -> None:
        """Block until the queue is empty: every message delivered or returned to its sender."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.queue():
                return
            time.sleep(0.1)
        raise AssertionError(f"postfix queue not empty after {timeout}s: {self.queue()}\n"
                             f"{self.log_text()[-3000:]}")

    def log_text(self) -> str:
        if self.root is None or not (self.root / "postfix.log").exists():
            return ""
        return (self.root / "postfix.log").read_text(errors="replace")

    def _postfix(self, *args: str) -> None:
        binary = shutil.which("postfix", path=_SBIN_PATH) or "postfix"
        assert self.root is not None
        result = subprocess.run([binary, "-c", str(self.root / "etc"), *args],
                                capture_output=True, text=True, timeout=60)
        if result.returncode != 0:
            raise PostfixError(f"postfix {' '.join(args)} failed:\n{result.stdout}{result.stderr}"
                               f"{self.log_text()}")

    def _postqueue(self, *args: str) -> str:
        binary = shutil.which("postqueue", path=_SBIN_PATH) or "postqueue"
        assert self.root is not None
        result = subprocess.run([binary, "-c", str(self.root / "etc"), *args],
                                capture_output=True, text=True, timeout=30, check=True)
        return result.stdout

    def _prepare(self) -> Path:
        if self.root is not None:
            return self.root
        root = Path(tempfile.mkdtemp(prefix="pf-", dir="/tmp"))
        # Postfix wants root to own the path to its queue, and its own user to traverse it.
        root.chmod(0o755)
        (root / "etc").mkdir(mode=0o755)
        (root / "queue").mkdir(mode=0o755)
        self.root = root
        return root

    def _write_config(self, root: Path, token: str) -> None:
        owner = "postfix"
        setgid = "postdrop"
        (root / "etc" / "main.cf").write_text(_POSTFIX_MAIN.substitute(
            root=root, owner=owner, setgid=setgid, domain=self.domain, token=token,
            lmtp_port=self.dovecot.lmtp_port), encoding="utf-8")
        (root / "etc" / "master.cf").write_text(_POSTFIX_MASTER.substitute(port=self.port),
                                                encoding="utf-8")


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@dataclass(frozen=True)
class CapturedMail:
    """One SMTP transaction as the sink saw it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    login: str | None = None  # the AUTH user name, None when the client did not authenticate

    @property
    def message(self) -> EmailMessage:
        return BytesParser(policy=policy.default).parsebytes(self.data)


class _OwnDeprecationNotice(logging.Filter):
    """Drops aiosmtpd 1.4's "Session.login_data is deprecated" line, which the server logs about
    itself: after every successful `authenticator` call (the current API, used here) it still
    fills the legacy `login_data`. The sink reads `session.auth_data` only."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Session.login_data is deprecated")


_AIOSMTPD_LOG = logging.getLogger("mail.log")


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = self._sink.data_reply
        if not reply.startswith("2"):
            return reply
        auth = session.auth_data
        login = auth.login.decode() if isinstance(auth, LoginPassword) else None
        content = envelope.content
        data = content.encode() if isinstance(content, str) else bytes(content or b"")
        self._sink._capture(
            CapturedMail(str(envelope.mail_from), [str(r) for r in envelope.rcpt_tos], data, login)
        )
        return reply


class SmtpSink:
    """An aiosmtpd server capturing every message; stop() and start() reuse the same port.

    AUTH PLAIN/LOGIN is offered without TLS and accepts only `username`/`password`, so a daemon
    configured with SMTP credentials works against it; authenticating is optional. Set
    `data_reply` to e.g. "451 4.3.0 Try later" to make the server refuse mail (not captured).
    """

    host = "127.0.0.1"

    def __init__(self, username: str = "incidencias@example.com", password: str = "secret") -> None:
        self.username = username
        self.password = password
        self.port = free_port()
        self.messages: list[CapturedMail] = []
        self.data_reply = "250 Message accepted"
        self.logins = 0  # successful AUTHs: one per connection of a client that logs in
        # Called with each captured message before the client gets its reply: a crash test kills
        # the daemon here, between DATA and the commit that marks the row sent.
        self.on_message: Callable[[CapturedMail], object] | None = None
        self._arrived = threading.Condition()
        self._controller: Controller | None = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def start(self) -> None:
        if self._controller is not None:
            return
        if not any(isinstance(f, _OwnDeprecationNotice) for f in _AIOSMTPD_LOG.filters):
            _AIOSMTPD_LOG.addFilter(_OwnDeprecationNotice())
        controller = Controller(
            _Handler(self),
            hostname=self.host,
            port=self.port,
            authenticator=self._authenticate,
            auth_require_tls=False,
        )
        controller.start()
        self._controller = controller

    def stop(self) -> None:
        controller, self._controller = self._controller, None
        if controller is not None:
            controller.stop()

    def __enter__(self) -> SmtpSink:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def clear(self) -> None:
        with self._arrived:
            self.messages.clear()

    def wait_for(self, count: int, timeout: float = 10.0) -> list[CapturedMail]:
        """Block until at least `count` messages arrived; return them, or fail listing what came."""
        with self._arrived:
            if self._arrived.wait_for(lambda: len(self.messages) >= count, timeout):
                return list(self.messages)
            got = "\n".join(
                f"  from={m.mail_from} to={m.rcpt_tos} subject={m.message['Subject']!r}"
                for m in self.messages
            )
            raise AssertionError(
                f"expected {count} message(s) within {timeout}s, got {len(self.messages)}:\n{got}"
            )

    def _capture(self, mail: CapturedMail) -> None:
        with self._arrived:
            self.messages.append(mail)
            self._arrived.notify_all()
        if self.on_message is not None:
            self.on_message(mail)

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        self.logins += ok
        # handled=False makes aiosmtpd send the 535 reply; True would leave the client hanging.
        return AuthResult(success=ok, handled=False, auth_data=auth_data if ok else None)

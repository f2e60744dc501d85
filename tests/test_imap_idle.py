"""The intake's IMAP connection notices a server that goes away while it waits in IDLE."""

from __future__ import annotations

import threading
import time

from helpers.harness import SHOP_USER
from helpers.mailservers import Dovecot

from daemon.config import ImapConfig
from daemon.inbound.imap import ImapInbox
from daemon.inbound.intake import CONNECTION_ERRORS


def _idling(imap: Dovecot) -> tuple[ImapInbox, threading.Thread, list[BaseException]]:
    """The shop's inbox connected and waiting in IDLE on a thread; what the wait raised is listed."""
    inbox = ImapInbox(ImapConfig(host="127.0.0.1", port=imap.port, security="none",
                                 username=SHOP_USER, idle=True), imap.password)
    inbox.connect()
    raised: list[BaseException] = []

    def wait() -> None:
        try:
            inbox.wait_for_mail(threading.Event(), 60)
        except BaseException as exc:
            raised.append(exc)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    return inbox, thread, raised


def test_a_server_stopped_during_idle_ends_the_wait_with_a_connection_error(imap: Dovecot) -> None:
    inbox, thread, raised = _idling(imap)
    time.sleep(1.0)
    assert thread.is_alive(), "IDLE ended although nothing happened"
    imap.stop()
    thread.join(5)
    assert not thread.is_alive(), "still waiting in IDLE on a closed connection"
    assert len(raised) == 1 and isinstance(raised[0], CONNECTION_ERRORS), raised
    inbox.close()


def test_new_mail_ends_the_idle_wait_without_error(imap: Dovecot) -> None:
    inbox, thread, raised = _idling(imap)
    time.sleep(0.5)
    imap.append(SHOP_USER, b"From: a@example.net\r\nSubject: hola\r\n\r\nhola\r\n")
    thread.join(5)
    assert not thread.is_alive() and raised == []
    inbox.close()

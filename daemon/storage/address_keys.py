"""Addresses turned into keyed hashes and pseudonyms, so erased people stay countable but unnamed.

One random key per installation, kept in `daemon_state` (created by migration 0006, or here on
first use), makes both: an HMAC-SHA-256 of the normalised address. The same address always gives
the same hash and the same pseudonym, so a forgotten customer's tickets still add up to one
customer in counts and reports; nobody can reverse them, and matching a guessed address needs the
key, which lives only in this database.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

from sqlalchemy.orm import Session

from daemon.storage.models import KeyValue

__all__ = ["FORGOTTEN_DOMAIN", "KEY_NAME", "address_hash", "is_pseudonym", "keyed_hash",
           "new_key", "pseudonym", "pseudonym_for"]

KEY_NAME = "personal_data_key"
FORGOTTEN_DOMAIN = "forgotten.invalid"


def new_key() -> str:
    return secrets.token_hex(32)


def keyed_hash(key: str, address: str, purpose: str = "address") -> str:
    """HMAC-SHA-256 (hex) of the lower-cased address; `purpose` keeps hashes of different uses apart."""
    normal = address.strip().lower()
    return hmac.new(bytes.fromhex(key), f"{purpose}:{normal}".encode(), hashlib.sha256).hexdigest()


def pseudonym_for(key: str, address: str) -> str:
    """The stand-in address a forgotten person's records carry, e.g. anon-3f9a…@forgotten.invalid."""
    return f"anon-{keyed_hash(key, address, 'pseudonym')[:20]}@{FORGOTTEN_DOMAIN}"


def is_pseudonym(address: str) -> bool:
    return address.endswith(f"@{FORGOTTEN_DOMAIN}")


def installation_key(session: Session) -> str:
    """The installation's key, created (in its own savepoint) the first time it is needed."""
    row = session.get(KeyValue, KEY_NAME)
    if row is not None:
        return row.value
    with session.begin_nested():
        session.add(KeyValue(key=KEY_NAME, value=new_key()))
    return session.get_one(KeyValue, KEY_NAME).value


def address_hash(session: Session, address: str) -> str:
    return keyed_hash(installation_key(session), address)


def pseudonym(session: Session, address: str) -> str:
    return pseudonym_for(installation_key(session), address)

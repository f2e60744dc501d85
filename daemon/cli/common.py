"""What every command group shares: exit statuses and a database session for one command."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from sqlalchemy.orm import Session, sessionmaker

from daemon.config import Settings
from daemon.storage import db

if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]
else:
    Commands = argparse._SubParsersAction

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def open_sessions(settings: Settings) -> sessionmaker[Session]:
    """Sessions on the configured database, migrated as `run` would (SQLite) or checked (others)."""
    from daemon.runtime.service import prepare_database

    return db.session_factory(prepare_database(settings))

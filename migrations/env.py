"""Alembic environment: runs against the engine the daemon hands over (see daemon.storage.db)."""

from alembic import context
from sqlalchemy import Engine

from daemon.storage.models import Base

engine: Engine = context.config.attributes["engine"]
with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    context.run_migrations()

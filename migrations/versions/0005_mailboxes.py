"""mailboxes: each ticket belongs to one mailbox; existing tickets to "default"

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('mailbox', sa.String(length=63), nullable=False,
                                      server_default='default'))
        batch_op.create_index('ix_tickets_mailbox_status', ['mailbox', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_mailbox_status')
        batch_op.drop_column('mailbox')

"""hardening: unreachable customers, bounce suppression, automatic outbox mail

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('suppressed_addresses',
    sa.Column('email', sa.String(length=320), nullable=False),
    sa.Column('until', sa.DateTime(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], name='fk_suppressed_addresses_ticket',
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('email')
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unreachable_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('unreachable_reason', sa.Text(), nullable=True))

    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('automatic', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.create_index('ix_outbox_automatic_created', ['automatic', 'created_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_automatic_created')
        batch_op.drop_column('automatic')

    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('unreachable_reason')
        batch_op.drop_column('unreachable_at')

    op.drop_table('suppressed_addresses')

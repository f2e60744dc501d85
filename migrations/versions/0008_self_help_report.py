"""self-help and report: FAQ names shown, self-solved, satisfaction time and thank-you marker;
indexes for the report's period queries

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('faq', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('self_solved', sa.Boolean(), nullable=False,
                                      server_default=sa.false()))
        batch_op.add_column(sa.Column('satisfaction_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('satisfaction_thanked_at', sa.DateTime(), nullable=True))
        batch_op.create_index('ix_tickets_created_at', ['created_at'], unique=False)
        batch_op.create_index('ix_tickets_closed_at', ['closed_at'], unique=False)
        batch_op.create_index('ix_tickets_satisfaction_at', ['satisfaction_at'], unique=False)
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_direction_created', ['direction', 'created_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_direction_created')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_index('ix_tickets_satisfaction_at')
        batch_op.drop_index('ix_tickets_closed_at')
        batch_op.drop_index('ix_tickets_created_at')
        batch_op.drop_column('satisfaction_thanked_at')
        batch_op.drop_column('satisfaction_at')
        batch_op.drop_column('self_solved')
        batch_op.drop_column('faq')

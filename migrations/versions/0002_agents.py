"""agents: ticket assignment, tags, status line, wait, thread index; agent warnings

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 10:02:16.370268
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('agent_warnings',
    sa.Column('agent', sa.String(length=320), nullable=False),
    sa.Column('last_warned_at', sa.DateTime(), nullable=False),
    sa.PrimaryKeyConstraint('agent')
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('thread_index', sa.String(length=400), nullable=True))
        batch_op.add_column(sa.Column('assigned_to', sa.String(length=320), nullable=True))
        batch_op.add_column(sa.Column('tags', sa.Text(), nullable=False, server_default=''))
        batch_op.add_column(sa.Column('status_line', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('wait_until', sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('wait_until')
        batch_op.drop_column('status_line')
        batch_op.drop_column('tags')
        batch_op.drop_column('assigned_to')
        batch_op.drop_column('thread_index')

    op.drop_table('agent_warnings')

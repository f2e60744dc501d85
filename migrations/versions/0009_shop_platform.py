"""shop platform: order numbers on tickets, closings waiting for the shop's coupon

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-06 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('orders', sa.Text(), nullable=False, server_default=''))
    op.create_table(
        'pending_closings',
        sa.Column('ticket_id', sa.Integer(), nullable=False),
        sa.Column('code', sa.String(length=64), nullable=False),
        sa.Column('percent', sa.Integer(), nullable=False),
        sa.Column('valid_until', sa.DateTime(), nullable=False),
        sa.Column('personal_line', sa.Text(), nullable=True),
        sa.Column('since', sa.DateTime(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('agents_told_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('ticket_id'),
    )


def downgrade() -> None:
    op.drop_table('pending_closings')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('orders')

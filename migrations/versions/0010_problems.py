"""problems: one incident linking several tickets, and its history

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'problems',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('mailbox', sa.String(length=63), nullable=False),
        sa.Column('name', sa.String(length=63), nullable=False),
        sa.Column('title', sa.Text(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('status_line', sa.Text(), nullable=True),
        sa.Column('keywords', sa.Text(), nullable=False),
        sa.Column('thread_id', sa.String(length=998), nullable=False),
        sa.Column('created_by', sa.String(length=320), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('resolved_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('mailbox', 'name', name='uq_problems_mailbox_name'),
    )
    op.create_table(
        'problem_events',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('problem_id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=32), nullable=False),
        sa.Column('agent', sa.String(length=320), nullable=False),
        sa.Column('message_id', sa.String(length=998), nullable=True),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('raw_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['problem_id'], ['problems.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['raw_id'], ['raw_messages.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('message_id'),
    )
    op.create_index('ix_problem_events_problem_id', 'problem_events', ['problem_id'])
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('problem_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_tickets_problem_id', ['problem_id'], unique=False)
        batch_op.create_foreign_key('fk_tickets_problem', 'problems', ['problem_id'], ['id'],
                                    ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_constraint('fk_tickets_problem', type_='foreignkey')
        batch_op.drop_index('ix_tickets_problem_id')
        batch_op.drop_column('problem_id')
    op.drop_index('ix_problem_events_problem_id', table_name='problem_events')
    op.drop_table('problem_events')
    op.drop_table('problems')

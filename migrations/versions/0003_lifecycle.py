"""lifecycle

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 10:10:49.690707
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('daemon_state',
    sa.Column('key', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('discount_codes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('percent', sa.Integer(), nullable=True),
    sa.Column('valid_until', sa.DateTime(), nullable=True),
    sa.Column('ticket_id', sa.Integer(), nullable=True),
    sa.Column('claimed_at', sa.DateTime(), nullable=True),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    with op.batch_alter_table('discount_codes', schema=None) as batch_op:
        batch_op.create_index('ix_discount_codes_free', ['source', 'claimed_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_discount_codes_ticket_id'), ['ticket_id'], unique=False)

    op.create_table('promises',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ticket_id', sa.Integer(), nullable=False),
    sa.Column('agent', sa.String(length=320), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('due_at', sa.DateTime(), nullable=False),
    sa.Column('created_at', sa.DateTime(), nullable=False),
    sa.Column('reminded_at', sa.DateTime(), nullable=True),
    sa.Column('overdue_notified_at', sa.DateTime(), nullable=True),
    sa.Column('done_at', sa.DateTime(), nullable=True),
    sa.ForeignKeyConstraint(['ticket_id'], ['tickets.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('promises', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_promises_due_at'), ['due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_promises_ticket_id'), ['ticket_id'], unique=False)

    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('last_agent_reply_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('first_agent_reply_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('waiting_since', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('waiting_reminded_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('unanswered_reminded_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('age_reminded_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('closed_at', sa.DateTime(), nullable=True))
        batch_op.add_column(sa.Column('satisfaction', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('previous_ticket_id', sa.Integer(), nullable=True))
        batch_op.create_index('ix_tickets_status_last_outbound', ['status', 'last_outbound_at'], unique=False)
        batch_op.create_foreign_key('fk_tickets_previous_ticket', 'tickets', ['previous_ticket_id'], ['id'])



def downgrade() -> None:
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        # WARNING: constraint name is None; this directive will fail as
        # rendered.  Add a name, or use a naming convention; see
        # https://alembic.sqlalchemy.org/en/latest/naming.html
        batch_op.drop_constraint('fk_tickets_previous_ticket', type_='foreignkey')
        batch_op.drop_index('ix_tickets_status_last_outbound')
        batch_op.drop_column('previous_ticket_id')
        batch_op.drop_column('satisfaction')
        batch_op.drop_column('closed_at')
        batch_op.drop_column('age_reminded_at')
        batch_op.drop_column('unanswered_reminded_at')
        batch_op.drop_column('waiting_reminded_at')
        batch_op.drop_column('waiting_since')
        batch_op.drop_column('first_agent_reply_at')
        batch_op.drop_column('last_agent_reply_at')

    with op.batch_alter_table('promises', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_promises_ticket_id'))
        batch_op.drop_index(batch_op.f('ix_promises_due_at'))

    op.drop_table('promises')
    with op.batch_alter_table('discount_codes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_discount_codes_ticket_id'))
        batch_op.drop_index('ix_discount_codes_free')

    op.drop_table('discount_codes')
    op.drop_table('daemon_state')

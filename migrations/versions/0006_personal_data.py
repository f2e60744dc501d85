"""personal data: erasure audit, pseudonymisation marks, a per-installation key, suppression by hash

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from daemon.storage.address_keys import KEY_NAME, keyed_hash, new_key

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'erasures',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('reason', sa.String(length=32), nullable=False),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column('tickets', sa.Integer(), nullable=False),
        sa.Column('messages', sa.Integer(), nullable=False),
        sa.Column('raw_mails', sa.Integer(), nullable=False),
        sa.Column('attachments', sa.Integer(), nullable=False),
        sa.Column('outbox', sa.Integer(), nullable=False),
        sa.Column('imap_copies', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pseudonymised_at', sa.DateTime(), nullable=True))
    with op.batch_alter_table('raw_messages', schema=None) as batch_op:
        batch_op.add_column(sa.Column('erased_at', sa.DateTime(), nullable=True))

    connection = op.get_bind()
    key = connection.scalar(sa.text("SELECT value FROM daemon_state WHERE key = :k"), {"k": KEY_NAME})
    if key is None:
        key = new_key()
        connection.execute(sa.text("INSERT INTO daemon_state (key, value) VALUES (:k, :v)"),
                           {"k": KEY_NAME, "v": key})
    with op.batch_alter_table('suppressed_addresses', schema=None) as batch_op:
        batch_op.alter_column('email', new_column_name='address_hash',
                              existing_type=sa.String(length=320), type_=sa.String(length=128),
                              existing_nullable=False)
    rows = connection.execute(sa.text("SELECT address_hash FROM suppressed_addresses")).all()
    for (address,) in rows:
        connection.execute(sa.text("UPDATE suppressed_addresses SET address_hash = :h, "
                                   "reason = :r WHERE address_hash = :a"),
                           {"h": keyed_hash(key, address), "r": "hard bounce", "a": address})


def downgrade() -> None:
    # The addresses behind the hashes are gone for good: suppression starts afresh.
    op.execute("DELETE FROM suppressed_addresses")
    with op.batch_alter_table('suppressed_addresses', schema=None) as batch_op:
        batch_op.alter_column('address_hash', new_column_name='email',
                              existing_type=sa.String(length=128), type_=sa.String(length=320),
                              existing_nullable=False)
    with op.batch_alter_table('raw_messages', schema=None) as batch_op:
        batch_op.drop_column('erased_at')
    with op.batch_alter_table('tickets', schema=None) as batch_op:
        batch_op.drop_column('pseudonymised_at')
    op.drop_table('erasures')

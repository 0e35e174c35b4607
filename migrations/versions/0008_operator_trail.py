"""operator trail: the needs-attention set's acknowledgements, who paused, admin actions

Issue 23: a key's acknowledgement (who, when, note) and the moment it entered the
needs-attention set live on its sync_state row, so the engine's success record clears
the acknowledgement in the statement it already runs; a service's pause records who and
since when; every operator action is a row for the dashboard's audit view.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 13:55:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db.types


revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('admin_actions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('via', sa.String(length=16), nullable=False),
    sa.Column('who', sa.String(length=200), nullable=False),
    sa.Column('scope', sa.JSON(), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_admin_actions'))
    )
    with op.batch_alter_table('admin_actions', schema=None) as batch_op:
        batch_op.create_index('ix_admin_actions_at', ['at'], unique=False)

    with op.batch_alter_table('service_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('paused_by', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('paused_at', core.db.types.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('sync_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attention_since', core.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('ack_by', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('ack_at', core.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('ack_note', sa.Text(), nullable=True))
    # Keys already in needs attention entered it no later than their last attempt.
    op.execute("UPDATE sync_state SET attention_since = COALESCE(last_attempt_at, "
               "failing_since, updated_at) WHERE status = 'needs_attention'")
    op.execute("UPDATE service_state SET paused_at = updated_at WHERE paused")


def downgrade() -> None:
    with op.batch_alter_table('sync_state', schema=None) as batch_op:
        batch_op.drop_column('ack_note')
        batch_op.drop_column('ack_at')
        batch_op.drop_column('ack_by')
        batch_op.drop_column('attention_since')

    with op.batch_alter_table('service_state', schema=None) as batch_op:
        batch_op.drop_column('paused_at')
        batch_op.drop_column('paused_by')

    with op.batch_alter_table('admin_actions', schema=None) as batch_op:
        batch_op.drop_index('ix_admin_actions_at')

    op.drop_table('admin_actions')

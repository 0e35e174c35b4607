"""deletion guard: held plans, the applied-removals window, and the `held` key status

A sync whose plan would remove too many members is held before any write (issue 25):
its plan waits in held_plans for an operator, its key in status 'held'. The window of
removals let through is a table so that every daemon (and a restarted one) counts the
same ten minutes.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:44:27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db.types


revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = "status IN ('ok', 'pending', 'running', 'retrying', 'needs_attention')"
NEW_STATUSES = "status IN ('ok', 'pending', 'running', 'retrying', 'needs_attention', 'held')"


def upgrade() -> None:
    op.create_table('applied_removals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('sync_type', sa.String(length=16), nullable=False),
    sa.Column('group_id', sa.Integer(), nullable=False),
    sa.Column('removals', sa.Integer(), nullable=False),
    sa.Column('at', core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_applied_removals'))
    )
    with op.batch_alter_table('applied_removals', schema=None) as batch_op:
        batch_op.create_index('ix_applied_removals_type_at', ['sync_type', 'at'], unique=False)

    op.create_table('held_plans',
    sa.Column('sync_type', sa.String(length=16), nullable=False),
    sa.Column('group_id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('plan', sa.JSON(), nullable=False),
    sa.Column('removals', sa.Integer(), nullable=False),
    sa.Column('members', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('held_at', core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('decided_by', sa.String(length=200), nullable=True),
    sa.Column('decided_at', core.db.types.UTCDateTime(timezone=True), nullable=True),
    sa.CheckConstraint("decision IN ('pending', 'approved', 'rejected')", name=op.f('ck_held_plans_decision')),
    sa.PrimaryKeyConstraint('sync_type', 'group_id', name=op.f('pk_held_plans'))
    )
    with op.batch_alter_table('sync_state', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_sync_state_status'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_sync_state_status'), NEW_STATUSES)


def downgrade() -> None:
    # A held key becomes pending: the old code runs it (unguarded) as the owed key it is.
    op.execute("UPDATE sync_state SET status = 'pending' WHERE status = 'held'")
    with op.batch_alter_table('sync_state', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_sync_state_status'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_sync_state_status'), OLD_STATUSES)
    op.drop_table('held_plans')
    with op.batch_alter_table('applied_removals', schema=None) as batch_op:
        batch_op.drop_index('ix_applied_removals_type_at')

    op.drop_table('applied_removals')

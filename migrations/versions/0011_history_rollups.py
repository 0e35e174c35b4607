"""history rollups: per-minute and per-hour series kept in SQL, and when a key was requested

Issue 23: runs by sync type and outcome, external calls by service and status, rate-limit
waits, owed keys and commit → applied latency buckets, one row per (resolution, bucket,
series, label), flushed once a minute by every daemon that counted and pruned by the
active one; sync_state.requested_at is the oldest request a key still owes, the start of
its commit → applied latency.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-02 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db.types


revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('history_rollups',
    sa.Column('resolution', sa.String(length=8), nullable=False),
    sa.Column('at', core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('series', sa.String(length=24), nullable=False),
    sa.Column('label', sa.String(length=64), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('samples', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('resolution', 'at', 'series', 'label',
                            name=op.f('pk_history_rollups'))
    )
    with op.batch_alter_table('sync_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('requested_at', core.db.types.UTCDateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('sync_state', schema=None) as batch_op:
        batch_op.drop_column('requested_at')
    op.drop_table('history_rollups')

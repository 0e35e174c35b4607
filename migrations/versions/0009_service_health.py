"""service health: a service whose credentials were rejected, for every daemon and face

A revoked bot token or a refused Google token exchange parks the whole service (issue 25):
its state, since when, the service's words, the setting to fix and the next probe are
kept on the service's row, so a standby that takes over keeps the keys parked, and the
CLI, the API and the dashboard say the same.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 14:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db.types


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('service_state', schema=None) as batch_op:
        batch_op.add_column(sa.Column('health', sa.String(length=24),
                                      server_default='healthy', nullable=False))
        batch_op.add_column(sa.Column('health_since', core.db.types.UTCDateTime(timezone=True),
                                      nullable=True))
        batch_op.add_column(sa.Column('health_reason', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('health_variable', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('next_probe_at', core.db.types.UTCDateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('service_state', schema=None) as batch_op:
        batch_op.drop_column('next_probe_at')
        batch_op.drop_column('health_variable')
        batch_op.drop_column('health_reason')
        batch_op.drop_column('health_since')
        batch_op.drop_column('health')

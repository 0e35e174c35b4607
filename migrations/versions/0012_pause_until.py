"""pause until: an operator's pause may end by itself at a set time

Issue 23: a pause for a known window ("Google maintenance, 2 h") ends on its own, so a
forgotten pause does not hold a service's syncs for days, and a paused key can say when
it may next run. NULL keeps today's meaning: paused until someone resumes it.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 19:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db.types


revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('service_state') as batch_op:
        batch_op.add_column(sa.Column('paused_until', core.db.types.UTCDateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('service_state') as batch_op:
        batch_op.drop_column('paused_until')

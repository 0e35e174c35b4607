"""reminder deliveries carry their attempts: retrying and missed, like a sync key

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db.types


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATUSES = "status IN ('scheduled', 'sending', 'sent', 'skipped', 'cancelled')"
NEW_STATUSES = (
    "status IN ('scheduled', 'sending', 'retrying', 'sent', 'missed', 'skipped', 'cancelled')"
)


def upgrade() -> None:
    with op.batch_alter_table('reminder_deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('attempt', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('next_attempt_at', core.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('last_error', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('error_kind', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('failing_since', core.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('sentry_reported_level', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('first_post_at', core.db.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.drop_constraint(batch_op.f('ck_reminder_deliveries_status'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_reminder_deliveries_status'), NEW_STATUSES)
        batch_op.create_index('ix_reminder_deliveries_status', ['status'], unique=False)


def downgrade() -> None:
    # Rows only the new code knows become what the old code would have left.
    op.execute("UPDATE reminder_deliveries SET status = 'scheduled' WHERE status = 'retrying'")
    op.execute("UPDATE reminder_deliveries SET status = 'skipped' WHERE status = 'missed'")
    with op.batch_alter_table('reminder_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_reminder_deliveries_status')
        batch_op.drop_constraint(batch_op.f('ck_reminder_deliveries_status'), type_='check')
        batch_op.create_check_constraint(batch_op.f('ck_reminder_deliveries_status'), OLD_STATUSES)
        batch_op.drop_column('first_post_at')
        batch_op.drop_column('sentry_reported_level')
        batch_op.drop_column('failing_since')
        batch_op.drop_column('error_kind')
        batch_op.drop_column('last_error')
        batch_op.drop_column('next_attempt_at')
        batch_op.drop_column('attempt')

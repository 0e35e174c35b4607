"""delivery intents: pending/settled state on delivery records; several calendar
records per meeting (an old calendar's event stays owed a cancel)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 12:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATES = "state IN ('pending', 'settled', 'resend')"


def upgrade() -> None:
    with op.batch_alter_table('calendar_events', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('state', sa.String(length=16), server_default='settled', nullable=False))
        batch_op.drop_constraint(op.f('uq_calendar_events_meeting_id'), type_='unique')
        batch_op.create_index(
            batch_op.f('ix_calendar_events_meeting_id'), ['meeting_id'], unique=False)
        batch_op.create_check_constraint('state', STATES)

    with op.batch_alter_table('discord_grants', schema=None) as batch_op:
        batch_op.add_column(
            sa.Column('state', sa.String(length=16), server_default='settled', nullable=False))
        batch_op.create_check_constraint('state', STATES)


def downgrade() -> None:
    with op.batch_alter_table('discord_grants', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_discord_grants_state'), type_='check')
        batch_op.drop_column('state')

    with op.batch_alter_table('calendar_events', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_calendar_events_state'), type_='check')
        batch_op.drop_index(batch_op.f('ix_calendar_events_meeting_id'))
        batch_op.create_unique_constraint(op.f('uq_calendar_events_meeting_id'), ['meeting_id'])
        batch_op.drop_column('state')

"""calendar push channels: the watch channels of followed calendars

With CALENDAR_PUSH_URL set the active daemon watches each followed calendar (issue 22);
Google cannot list channels, so their ids, expiry and secret tokens are kept here.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 19:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db.types


revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('calendar_push_channels',
    sa.Column('channel_id', sa.String(length=64), nullable=False),
    sa.Column('calendar_id', sa.String(length=255), nullable=False),
    sa.Column('resource_id', sa.String(length=255), nullable=False),
    sa.Column('token', sa.String(length=128), nullable=False),
    sa.Column('expires_at', core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('created_at', core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('channel_id', name=op.f('pk_calendar_push_channels'))
    )
    op.create_index(op.f('ix_calendar_push_channels_calendar_id'), 'calendar_push_channels',
                    ['calendar_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_calendar_push_channels_calendar_id'),
                  table_name='calendar_push_channels')
    op.drop_table('calendar_push_channels')

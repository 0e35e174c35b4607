"""calendar sync tokens: where each calendar's incremental sync resumes

The periodic calendar job lists only what changed since Google's ``nextSyncToken``
(issue 22); the token is stored with the changes it covers, per calendar.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 14:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.db.types


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('calendar_sync_tokens',
    sa.Column('calendar_id', sa.String(length=255), nullable=False),
    sa.Column('sync_token', sa.Text(), nullable=False),
    sa.Column('synced_at', core.db.types.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('calendar_id', name=op.f('pk_calendar_sync_tokens'))
    )


def downgrade() -> None:
    op.drop_table('calendar_sync_tokens')

"""sync types come from the registry: sync_state.sync_type loses its fixed list

A sync type is one registration in the code (core.syncers.types); a database check
constraint listing the built-in four would refuse every key of a registered fifth type.
The names are validated where they enter (the registry), as every other input is.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 06:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUILT_IN = "sync_type IN ('discord', 'calendar', 'reminders', 'rsvps')"


def upgrade() -> None:
    with op.batch_alter_table('sync_state', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('ck_sync_state_sync_type'), type_='check')


def downgrade() -> None:
    # Keys of types beyond the built-in four would violate the old constraint: they go.
    op.execute(
        "DELETE FROM sync_state WHERE sync_type NOT IN ('discord', 'calendar', 'reminders', 'rsvps')"
    )
    with op.batch_alter_table('sync_state', schema=None) as batch_op:
        batch_op.create_check_constraint(batch_op.f('ck_sync_state_sync_type'), BUILT_IN)

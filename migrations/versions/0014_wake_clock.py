"""wake clock: SQLite's hand-off signal, bumped by triggers

On SQLite the daemon learns that another process handed work off from the database file
changing (inotify) — but its own heartbeats change the file too, and woke the outbox
sweep and the bulk worker every beat (most of an idle daemon's CPU, issue 26). Triggers
bump one counter on every write to the tables a daemon must notice, whichever process
writes; the watcher reads it when the file changed and wakes the daemon only when it
moved. PostgreSQL has NOTIFY: the table is created there too (one schema), no trigger.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 10:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tables whose rows another process writes for the daemon to act on: hand-offs and
# retries (sync_state), pauses and breaker resets (service_state), bulk jobs, decisions
# on held plans, reminder rows.
WATCHED = ("sync_state", "service_state", "bulk_jobs", "held_plans", "reminder_deliveries")
TICK = "UPDATE wake_clock SET ticks = ticks + 1 WHERE id = 1;"


def upgrade() -> None:
    op.create_table('wake_clock',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('ticks', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wake_clock'))
    )
    op.execute("INSERT INTO wake_clock (id, ticks) VALUES (1, 0)")
    if op.get_bind().dialect.name != "sqlite":
        return
    for table in WATCHED:
        for event in ("INSERT", "UPDATE"):
            op.execute(f"CREATE TRIGGER wake_{table}_{event.lower()} AFTER {event} ON {table} "
                       f"BEGIN {TICK} END")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in WATCHED:
            for event in ("insert", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS wake_{table}_{event}")
    op.drop_table('wake_clock')

"""call volume rollup

Revision ID: 0100_call_volume_rollup
Revises: 0200_transcripts
Create Date: 2026-11-26

Tables of the daily call-volume reports (``dialer.reports.models``): the pre-aggregated
``call_volume_rollup`` and the ``call_volume_dirty_hours`` markers. Every UTC hour that already
has calls is marked dirty, so the first report over it computes its rollup from the calls table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0100_call_volume_rollup"
down_revision: str | None = "0200_transcripts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MARK_EXISTING_HOURS = {
    "postgresql": (
        "INSERT INTO call_volume_dirty_hours (hour, generation) "
        "SELECT DISTINCT CAST(floor(extract(epoch FROM created_at) / 3600) AS BIGINT), 1 "
        "FROM calls"
    ),
    "sqlite": (
        "INSERT INTO call_volume_dirty_hours (hour, generation) "
        "SELECT DISTINCT CAST(strftime('%s', created_at) AS INTEGER) / 3600, 1 FROM calls"
    ),
}


def upgrade() -> None:
    op.create_table(
        "call_volume_rollup",
        sa.Column("grain", sa.SmallInteger(), nullable=False),
        sa.Column("dimension", sa.SmallInteger(), nullable=False),
        sa.Column("operator_key", sa.Integer(), nullable=False),
        sa.Column("period", sa.BigInteger(), nullable=False),
        sa.Column("dimension_value", sa.String(length=60), nullable=False),
        sa.Column("calls", sa.BigInteger(), nullable=False),
        sa.Column("answered", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("talk_count", sa.BigInteger(), nullable=False),
        sa.Column("talk_milliseconds", sa.BigInteger(), nullable=False),
        sa.Column("ring_count", sa.BigInteger(), nullable=False),
        sa.Column("ring_milliseconds", sa.BigInteger(), nullable=False),
        sa.Column("talk_histogram", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("grain", "dimension", "operator_key", "period", "dimension_value"),
        sqlite_with_rowid=False,
    )
    with op.batch_alter_table("call_volume_rollup", schema=None) as batch_op:
        batch_op.create_index(
            "ix_call_volume_rollup_grain_period", ["grain", "period"], unique=False
        )
    op.create_table(
        "call_volume_dirty_hours",
        sa.Column("hour", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("hour"),
    )
    statement = MARK_EXISTING_HOURS.get(op.get_bind().dialect.name)
    if statement is not None:
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("call_volume_dirty_hours")
    with op.batch_alter_table("call_volume_rollup", schema=None) as batch_op:
        batch_op.drop_index("ix_call_volume_rollup_grain_period")
    op.drop_table("call_volume_rollup")

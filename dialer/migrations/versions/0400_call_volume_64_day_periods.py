"""call volume 64-day periods

Revision ID: 0400_call_volume_64_day_periods
Revises: 0300_contact_search_indexes
Create Date: 2026-11-26

The call-volume rollups (``dialer.reports``) get a bigger grain: periods of 1536 hours (64 days)
on top of the eight-day ones, so a report over a year reads about 20 periods per key instead of
about 60. The new rows are summed here from the existing eight-day rows (measures added up,
talk-time histograms merged), so the rollups stay equal to the calls without recomputing
anything; hours still marked dirty are folded in by the next refresh, at every grain.

The index on ``(grain, period)`` becomes ``(grain, period, dimension, operator_key,
dimension_value)`` (same name): PostgreSQL then finds the rows a report names without fetching
every row of a period to filter them (SQLite's index held those columns already, as part of the
primary key).

The histogram format is repeated here (pairs ``(bin: uint16, count: uint16)`` little-endian,
sorted by bin, a count over 65 535 split over several pairs) so that this migration keeps working
whatever later becomes of ``dialer.reports.histogram``.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0400_call_volume_64_day_periods"
down_revision: str | None = "0300_contact_search_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHILD_GRAIN = 192
NEW_GRAIN = 1536
RATIO = NEW_GRAIN // CHILD_GRAIN
MEASURES = (
    "calls",
    "answered",
    "failed",
    "talk_count",
    "talk_milliseconds",
    "ring_count",
    "ring_milliseconds",
)
MAX_PAIR_COUNT = 0xFFFF
PAIR = struct.Struct("<HH")
INSERT_BATCH = 2000
DIMENSIONS = (0, 1, 2, 3)  # total, outcome, failure cause, UTC hour of day
ROLLUP = sa.table(
    "call_volume_rollup",
    sa.column("grain", sa.SmallInteger()),
    sa.column("dimension", sa.SmallInteger()),
    sa.column("operator_key", sa.Integer()),
    sa.column("period", sa.BigInteger()),
    sa.column("dimension_value", sa.String()),
    *(sa.column(name, sa.BigInteger()) for name in MEASURES),
    sa.column("talk_histogram", sa.LargeBinary()),
)


def _merged(blobs: list[bytes]) -> bytes:
    counts: dict[int, int] = {}
    for blob in blobs:
        for talk_bin, count in PAIR.iter_unpack(blob):
            counts[talk_bin] = counts.get(talk_bin, 0) + count
    pairs = bytearray()
    for talk_bin in sorted(counts):
        remaining = counts[talk_bin]
        while remaining > 0:
            part = min(remaining, MAX_PAIR_COUNT)
            pairs += PAIR.pack(talk_bin, part)
            remaining -= part
    return bytes(pairs)


def _grouped(rows: Iterator[Any]) -> Iterator[dict[str, Any]]:
    """New-grain rows from child rows of one operator key ordered by dimension, value, period."""
    current: tuple[int, int, str, int] | None = None
    sums = [0] * len(MEASURES)
    blobs: list[bytes] = []
    for row in rows:
        key = (row.dimension, row.operator_key, row.dimension_value, row.period // RATIO)
        if key != current:
            if current is not None:
                yield _row(current, sums, blobs)
            current, sums, blobs = key, [0] * len(MEASURES), []
        for index, name in enumerate(MEASURES):
            sums[index] += getattr(row, name)
        if row.talk_histogram:
            blobs.append(row.talk_histogram)
    if current is not None:
        yield _row(current, sums, blobs)


def _row(key: tuple[int, int, str, int], sums: list[int], blobs: list[bytes]) -> dict[str, Any]:
    dimension, operator_key, value, period = key
    return {
        "grain": NEW_GRAIN,
        "dimension": dimension,
        "operator_key": operator_key,
        "period": period,
        "dimension_value": value,
        **dict(zip(MEASURES, sums, strict=True)),
        "talk_histogram": _merged(blobs),
    }


INDEX_NAME = "ix_call_volume_rollup_grain_period"


def upgrade() -> None:
    with op.batch_alter_table("call_volume_rollup", schema=None) as batch_op:
        batch_op.drop_index(INDEX_NAME)
        batch_op.create_index(
            INDEX_NAME,
            ["grain", "period", "dimension", "operator_key", "dimension_value"],
            unique=False,
        )
    bind = op.get_bind()
    rollup = ROLLUP
    bind.execute(sa.delete(rollup).where(rollup.c.grain == NEW_GRAIN))
    operator_keys = bind.execute(
        sa.select(rollup.c.operator_key).where(rollup.c.grain == CHILD_GRAIN).distinct()
    ).scalars()
    for operator_key in sorted(operator_keys):
        # One key at a time: its rows of every period fit in memory whatever the table's size.
        rows = bind.execute(
            sa.select(rollup)
            .where(
                rollup.c.grain == CHILD_GRAIN,
                rollup.c.dimension.in_(DIMENSIONS),  # so the primary key finds them
                rollup.c.operator_key == operator_key,
            )
            .order_by(rollup.c.dimension, rollup.c.dimension_value, rollup.c.period)
        ).all()
        batch = list(_grouped(iter(rows)))
        for start in range(0, len(batch), INSERT_BATCH):
            bind.execute(sa.insert(rollup), batch[start : start + INSERT_BATCH])


def downgrade() -> None:
    with op.batch_alter_table("call_volume_rollup", schema=None) as batch_op:
        batch_op.drop_index(INDEX_NAME)
        batch_op.create_index(INDEX_NAME, ["grain", "period"], unique=False)
    op.get_bind().execute(sa.delete(ROLLUP).where(ROLLUP.c.grain == NEW_GRAIN))

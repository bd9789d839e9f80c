"""contact search indexes

Revision ID: 0300_contact_search_indexes
Revises: 0100_call_volume_rollup
Create Date: 2026-11-26

Indexes for contact search at a million contacts (see ``dialer.contacts``):

- ``ix_contact_phones_e164`` becomes ``(e164, contact_id)`` (was ``(e164)``; same name): a phone
  prefix finds its contacts from the index alone (both databases).
- PostgreSQL: the statistics target of ``contacts.search_text`` goes to 1000, so that the
  planner's guess of how many contacts a word matches comes from a 1000-entry histogram (with the
  default 100 it guessed ~100 matches for words that have 20 000 and sorted them all).
- PostgreSQL with ``btree_gin``: trigram indexes for what an operator sees, (owner_id,
  search_text) and shared contacts, both without deleted rows; the planner combines them
  (BitmapOr) instead of reading every match in the table to drop colleagues' contacts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0300_contact_search_indexes"
down_revision: str | None = "0100_call_volume_rollup"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

logger = logging.getLogger(__name__)

SEARCH_TEXT_STATISTICS = 1000
POSTGRESQL_VISIBILITY_INDEXES = (
    "CREATE INDEX ix_contacts_owner_search_text_trgm ON contacts "
    "USING gin (owner_id, search_text gin_trgm_ops) WHERE deleted_at IS NULL",
    "CREATE INDEX ix_contacts_shared_search_text_trgm ON contacts "
    "USING gin (search_text gin_trgm_ops) WHERE shared AND deleted_at IS NULL",
)


def upgrade() -> None:
    with op.batch_alter_table("contact_phones", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_phones_e164")
        batch_op.create_index("ix_contact_phones_e164", ["e164", "contact_id"], unique=False)
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute(
        f"ALTER TABLE contacts ALTER COLUMN search_text SET STATISTICS {SEARCH_TEXT_STATISTICS}"
    )
    installed = {
        row[0]
        for row in bind.execute(
            sa.text("SELECT extname FROM pg_extension WHERE extname IN ('pg_trgm', 'btree_gin')")
        )
    }
    if "pg_trgm" not in installed:
        return  # 0001 warned already: text search scans the table
    if "btree_gin" not in installed:
        available = bind.execute(
            sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'btree_gin'")
        ).first()
        if available is None:
            logger.warning("btree_gin is not available: operators' contact search is slower")
            return
        op.execute("CREATE EXTENSION IF NOT EXISTS btree_gin")
    for statement in POSTGRESQL_VISIBILITY_INDEXES:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_contacts_shared_search_text_trgm")
        op.execute("DROP INDEX IF EXISTS ix_contacts_owner_search_text_trgm")
        op.execute("ALTER TABLE contacts ALTER COLUMN search_text SET STATISTICS -1")
    with op.batch_alter_table("contact_phones", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_phones_e164")
        batch_op.create_index("ix_contact_phones_e164", ["e164"], unique=False)

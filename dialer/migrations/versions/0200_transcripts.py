"""transcription jobs, transcripts, utterances, call reviews and transcript search

Revision ID: 0200_transcripts
Revises: 0001
Create Date: 2026-12-01

Full-text search over transcripts: on SQLite an FTS5 table ``transcript_search`` (unicode61
tokens, so Korean and Russian words are tokens; external content = ``transcripts``, row id =
call id) kept by triggers; on PostgreSQL a generated ``search_vector`` tsvector column
(``simple`` configuration: no stemming, works for any language) with a GIN index.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0200_transcripts"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

SQLITE_SEARCH = (
    "CREATE VIRTUAL TABLE transcript_search USING fts5("
    "text, content='transcripts', content_rowid='call_id', "
    "tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER transcripts_search_insert AFTER INSERT ON transcripts BEGIN "
    "INSERT INTO transcript_search(rowid, text) VALUES (new.call_id, new.text); END",
    "CREATE TRIGGER transcripts_search_delete AFTER DELETE ON transcripts BEGIN "
    "INSERT INTO transcript_search(transcript_search, rowid, text) "
    "VALUES ('delete', old.call_id, old.text); END",
    "CREATE TRIGGER transcripts_search_update AFTER UPDATE OF text ON transcripts BEGIN "
    "INSERT INTO transcript_search(transcript_search, rowid, text) "
    "VALUES ('delete', old.call_id, old.text); "
    "INSERT INTO transcript_search(rowid, text) VALUES (new.call_id, new.text); END",
)

POSTGRESQL_SEARCH = (
    "ALTER TABLE transcripts ADD COLUMN search_vector tsvector "
    "GENERATED ALWAYS AS (to_tsvector('simple', text)) STORED",
    "CREATE INDEX ix_transcripts_search_vector ON transcripts USING gin (search_vector)",
)


def upgrade() -> None:
    op.create_table(
        "transcription_jobs",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("call_id", BIG_KEY, nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("available_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("worker_id", sa.String(length=120), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'done', 'failed')", name="ck_transcription_jobs_state"
        ),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_id"),
    )
    op.create_index(
        "ix_transcription_jobs_state_available_at",
        "transcription_jobs",
        ["state", "available_at"],
    )
    op.create_index(
        "ix_transcription_jobs_state_lease_expires_at",
        "transcription_jobs",
        ["state", "lease_expires_at"],
    )
    op.create_table(
        "transcripts",
        sa.Column("call_id", BIG_KEY, autoincrement=False, nullable=False),
        sa.Column("recording_id", BIG_KEY, nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("utterance_count", sa.Integer(), nullable=False),
        sa.Column("word_count", sa.Integer(), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["recording_id"], ["recordings.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("call_id"),
    )
    op.create_table(
        "transcript_utterances",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("call_id", BIG_KEY, nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("speaker", sa.String(length=10), nullable=False),
        sa.Column("start_seconds", sa.Float(), nullable=False),
        sa.Column("end_seconds", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("words", sa.JSON(), nullable=False),
        sa.CheckConstraint(
            "speaker IN ('operator', 'customer')", name="ck_transcript_utterances_speaker"
        ),
        sa.ForeignKeyConstraint(["call_id"], ["transcripts.call_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_transcript_utterances_call_id_position",
        "transcript_utterances",
        ["call_id", "position"],
    )
    op.create_table(
        "call_reviews",
        sa.Column("call_id", BIG_KEY, autoincrement=False, nullable=False),
        sa.Column("reviewer_id", sa.Integer(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("score BETWEEN 1 AND 5", name="ck_call_reviews_score"),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["reviewer_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("call_id"),
    )
    op.create_index("ix_call_reviews_reviewer_id", "call_reviews", ["reviewer_id"])
    dialect = op.get_bind().dialect.name
    statements = {"sqlite": SQLITE_SEARCH, "postgresql": POSTGRESQL_SEARCH}
    for statement in statements.get(dialect, ()):
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS transcripts_search_{trigger}")
        op.execute("DROP TABLE IF EXISTS transcript_search")
    op.drop_index("ix_call_reviews_reviewer_id", table_name="call_reviews")
    op.drop_table("call_reviews")
    op.drop_index("ix_transcript_utterances_call_id_position", table_name="transcript_utterances")
    op.drop_table("transcript_utterances")
    op.drop_table("transcripts")
    op.drop_index("ix_transcription_jobs_state_lease_expires_at", table_name="transcription_jobs")
    op.drop_index("ix_transcription_jobs_state_available_at", table_name="transcription_jobs")
    op.drop_table("transcription_jobs")

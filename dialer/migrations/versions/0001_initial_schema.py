"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Tables of the domain core, search indexes (PostgreSQL pg_trgm GIN; SQLite FTS5 trigram table
kept by triggers), append-only guards on audit_events, the default status list and the audit
chain head.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

logger = logging.getLogger(__name__)

BIG_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
GENESIS_HASH = "0" * 64

# code, label, final, do_not_call, callback
DEFAULT_STATUSES = (
    ("new", "New", False, False, False),
    ("no_answer", "No answer", False, False, False),
    ("callback", "Call back", False, False, True),
    ("interested", "Interested", False, False, True),
    ("not_interested", "Not interested", True, False, False),
    ("do_not_call", "Do not call", True, True, False),
    ("sale", "Sale", True, False, False),
    ("wrong_number", "Wrong number", True, False, False),
)

SQLITE_SEARCH = (
    "CREATE VIRTUAL TABLE contact_search USING fts5("
    "search_text, content='contacts', content_rowid='id', tokenize='trigram')",
    "CREATE TRIGGER contacts_search_insert AFTER INSERT ON contacts BEGIN "
    "INSERT INTO contact_search(rowid, search_text) VALUES (new.id, new.search_text); END",
    "CREATE TRIGGER contacts_search_delete AFTER DELETE ON contacts BEGIN "
    "INSERT INTO contact_search(contact_search, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); END",
    "CREATE TRIGGER contacts_search_update AFTER UPDATE OF search_text ON contacts BEGIN "
    "INSERT INTO contact_search(contact_search, rowid, search_text) "
    "VALUES ('delete', old.id, old.search_text); "
    "INSERT INTO contact_search(rowid, search_text) VALUES (new.id, new.search_text); END",
)

SQLITE_AUDIT_GUARDS = (
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events BEGIN "
    "SELECT RAISE(ABORT, 'audit_events is append-only'); END",
    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events BEGIN "
    "SELECT RAISE(ABORT, 'audit_events is append-only'); END",
)

POSTGRESQL_AUDIT_GUARDS = (
    "CREATE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
    "BEGIN RAISE EXCEPTION 'audit_events is append-only'; END $$",
    "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
    "FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change()",
    "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
    "FOR EACH STATEMENT EXECUTE FUNCTION audit_events_refuse_change()",
)


def upgrade() -> None:
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_event_id", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.Column("event_count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "audit_events",
        sa.Column("id", BIG_KEY, autoincrement=False, nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor_user_id", sa.Integer(), nullable=True),
        sa.Column("actor_login", sa.String(length=100), nullable=True),
        sa.Column("source_ip", sa.String(length=64), nullable=True),
        sa.Column("action", sa.String(length=60), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("previous_hash", sa.String(length=64), nullable=False),
        sa.Column("row_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.create_index("ix_audit_events_action", ["action"], unique=False)
        batch_op.create_index("ix_audit_events_actor_user_id", ["actor_user_id"], unique=False)
        batch_op.create_index("ix_audit_events_occurred_at", ["occurred_at"], unique=False)

    op.create_table(
        "contact_statuses",
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("label", sa.String(length=100), nullable=False),
        sa.Column("is_final", sa.Boolean(), nullable=False),
        sa.Column("is_do_not_call", sa.Boolean(), nullable=False),
        sa.Column("is_callback", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "login_throttles",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("window_failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_failure_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "key"),
    )
    op.create_table(
        "role_allow_lists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("network", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("role", "network"),
    )
    with op.batch_alter_table("role_allow_lists", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_role_allow_lists_role"), ["role"], unique=False)

    op.create_table(
        "teams",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("name"),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("login", sa.String(length=100), nullable=False),
        sa.Column("login_key", sa.String(length=100), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("team_id", sa.Integer(), nullable=True),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("password_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("totp_secret_encrypted", sa.Text(), nullable=True),
        sa.Column("allowed_networks", sa.JSON(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("phone_extension", sa.String(length=40), nullable=True),
        sa.Column("last_login_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("role IN ('operator', 'supervisor', 'admin')", name="ck_users_role"),
        sa.ForeignKeyConstraint(
            ["team_id"],
            ["teams.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("login_key"),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_team_id"), ["team_id"], unique=False)

    op.create_table(
        "contacts",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("company", sa.String(length=200), nullable=False),
        sa.Column("position", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=True),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("follow_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("follow_up_note", sa.Text(), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("notes", sa.Text(), nullable=False),
        sa.Column("custom_fields", sa.JSON(), nullable=False),
        sa.Column("shared", sa.Boolean(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by_id", sa.Integer(), nullable=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["deleted_by_id"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["status"],
            ["contact_statuses.code"],
        ),
        sa.ForeignKeyConstraint(
            ["updated_by_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.create_index("ix_contacts_deleted_at", ["deleted_at"], unique=False)
        batch_op.create_index("ix_contacts_follow_up_at", ["follow_up_at"], unique=False)
        batch_op.create_index("ix_contacts_owner_id", ["owner_id"], unique=False)
        batch_op.create_index("ix_contacts_status", ["status"], unique=False)
        batch_op.create_index("ix_contacts_search_text", ["search_text"], unique=False)

    op.create_table(
        "web_sessions",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("source_ip", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=40), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_sessions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "calls",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("contact_id", BIG_KEY, nullable=True),
        sa.Column("phone_e164", sa.String(length=20), nullable=False),
        sa.Column("phone_raw", sa.String(length=100), nullable=False),
        sa.Column("operator_id", sa.Integer(), nullable=True),
        sa.Column("account_name", sa.String(length=100), nullable=True),
        sa.Column("campaign_id", sa.BigInteger(), nullable=True),
        sa.Column("sip_call_id", sa.String(length=255), nullable=True),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("dialing_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ringing_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ring_seconds", sa.Float(), nullable=True),
        sa.Column("talk_seconds", sa.Float(), nullable=True),
        sa.Column("end_cause", sa.String(length=60), nullable=True),
        sa.Column("sip_code", sa.Integer(), nullable=True),
        sa.Column("sip_reason", sa.String(length=200), nullable=True),
        sa.Column("hangup_by", sa.String(length=10), nullable=True),
        sa.Column("outcome", sa.String(length=40), nullable=True),
        sa.Column("outcome_note", sa.Text(), nullable=True),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("follow_up_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("deleted_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["deleted_by_id"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["operator_id"],
            ["users.id"],
        ),
        sa.ForeignKeyConstraint(
            ["outcome"],
            ["contact_statuses.code"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.create_index("ix_calls_campaign_id", ["campaign_id"], unique=False)
        batch_op.create_index(
            "ix_calls_contact_id_created_at", ["contact_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_calls_created_at", ["created_at"], unique=False)
        batch_op.create_index(
            "ix_calls_operator_id_created_at", ["operator_id", "created_at"], unique=False
        )
        batch_op.create_index("ix_calls_sip_call_id", ["sip_call_id"], unique=False)
        batch_op.create_index("ix_calls_state", ["state"], unique=False)

    op.create_table(
        "contact_phones",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("contact_id", BIG_KEY, nullable=False),
        sa.Column("e164", sa.String(length=20), nullable=False),
        sa.Column("raw", sa.String(length=100), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("is_primary", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("contact_phones", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_contact_phones_contact_id"), ["contact_id"], unique=False
        )
        batch_op.create_index("ix_contact_phones_e164", ["e164"], unique=False)

    op.create_table(
        "recordings",
        sa.Column("id", BIG_KEY, nullable=False),
        sa.Column("call_id", BIG_KEY, nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("codec", sa.String(length=40), nullable=False),
        sa.Column("channels", sa.Integer(), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("duration_seconds", sa.Float(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("transcript_path", sa.String(length=500), nullable=True),
        sa.Column("transcript_status", sa.String(length=20), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.create_index("ix_recordings_call_id", ["call_id"], unique=False)

    _create_search_indexes()
    _create_audit_guards()
    _seed()


def _create_search_indexes() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        for statement in SQLITE_SEARCH:
            op.execute(statement)
        return
    if bind.dialect.name != "postgresql":
        return
    # Binary order so that prefix range scans (phones, short name prefixes) match byte-wise.
    op.execute('ALTER TABLE contact_phones ALTER COLUMN e164 TYPE varchar(20) COLLATE "C"')
    op.execute('ALTER TABLE contacts ALTER COLUMN search_text TYPE text COLLATE "C"')
    available = bind.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    ).first()
    if available is None:
        logger.warning("pg_trgm is not available: contact text search will scan the table")
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    op.execute(
        "CREATE INDEX ix_contacts_search_text_trgm ON contacts USING gin (search_text gin_trgm_ops)"
    )


def _create_audit_guards() -> None:
    dialect = op.get_bind().dialect.name
    guards = {"sqlite": SQLITE_AUDIT_GUARDS, "postgresql": POSTGRESQL_AUDIT_GUARDS}
    for statement in guards.get(dialect, ()):
        op.execute(statement)


def _seed() -> None:
    statuses = sa.table(
        "contact_statuses",
        sa.column("code", sa.String),
        sa.column("label", sa.String),
        sa.column("is_final", sa.Boolean),
        sa.column("is_do_not_call", sa.Boolean),
        sa.column("is_callback", sa.Boolean),
        sa.column("position", sa.Integer),
        sa.column("active", sa.Boolean),
    )
    op.bulk_insert(
        statuses,
        [
            {
                "code": code,
                "label": label,
                "is_final": final,
                "is_do_not_call": do_not_call,
                "is_callback": callback,
                "position": position,
                "active": True,
            }
            for position, (code, label, final, do_not_call, callback) in enumerate(DEFAULT_STATUSES)
        ],
    )
    head = sa.table(
        "audit_chain_head",
        sa.column("id", sa.Integer),
        sa.column("last_event_id", sa.BigInteger),
        sa.column("last_hash", sa.String),
        sa.column("event_count", sa.BigInteger),
    )
    op.bulk_insert(
        head, [{"id": 1, "last_event_id": 0, "last_hash": GENESIS_HASH, "event_count": 0}]
    )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TABLE IF EXISTS contact_search")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_truncate ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS audit_events_refuse_change()")
        op.execute("DROP INDEX IF EXISTS ix_contacts_search_text_trgm")
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_index("ix_recordings_call_id")

    op.drop_table("recordings")
    with op.batch_alter_table("contact_phones", schema=None) as batch_op:
        batch_op.drop_index("ix_contact_phones_e164")
        batch_op.drop_index(batch_op.f("ix_contact_phones_contact_id"))

    op.drop_table("contact_phones")
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_index("ix_calls_state")
        batch_op.drop_index("ix_calls_sip_call_id")
        batch_op.drop_index("ix_calls_operator_id_created_at")
        batch_op.drop_index("ix_calls_created_at")
        batch_op.drop_index("ix_calls_contact_id_created_at")
        batch_op.drop_index("ix_calls_campaign_id")

    op.drop_table("calls")
    with op.batch_alter_table("web_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_sessions_user_id"))

    op.drop_table("web_sessions")
    with op.batch_alter_table("contacts", schema=None) as batch_op:
        batch_op.drop_index("ix_contacts_status")
        batch_op.drop_index("ix_contacts_owner_id")
        batch_op.drop_index("ix_contacts_follow_up_at")
        batch_op.drop_index("ix_contacts_deleted_at")

    op.drop_table("contacts")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_team_id"))

    op.drop_table("users")
    op.drop_table("teams")
    with op.batch_alter_table("role_allow_lists", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_role_allow_lists_role"))

    op.drop_table("role_allow_lists")
    op.drop_table("login_throttles")
    op.drop_table("contact_statuses")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_events_occurred_at")
        batch_op.drop_index("ix_audit_events_actor_user_id")
        batch_op.drop_index("ix_audit_events_action")

    op.drop_table("audit_events")
    op.drop_table("audit_chain_head")

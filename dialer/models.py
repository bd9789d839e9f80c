"""SQLAlchemy 2.0 typed models of the domain core.

All timestamps are timezone-aware UTC datetimes (``UtcDateTime``). Soft-deleted rows carry
``deleted_at`` / ``deleted_by_id``; use cases hide them. Schema changes go through Alembic
(``dialer/migrations``); ``Base.metadata`` is the reference the migrations are checked against.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator


def utc_now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out, on SQLite (naive text) and PostgreSQL (timestamptz)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use aware UTC datetimes")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# A big integer key that is SQLite's rowid alias there.
BigKey = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class PhoneKind(StrEnum):
    MOBILE = "mobile"
    WORK = "work"
    HOME = "home"


class CallDirection(StrEnum):
    OUTBOUND = "outbound"
    INBOUND = "inbound"


class CallState(StrEnum):
    """Lifecycle: created -> dialing -> ringing -> answered -> ended; failed / interrupted end it
    from any live state (see ``dialer.calls.ALLOWED_TRANSITIONS``)."""

    CREATED = "created"
    DIALING = "dialing"
    RINGING = "ringing"
    ANSWERED = "answered"
    ENDED = "ended"
    FAILED = "failed"
    INTERRUPTED = "interrupted"


FINISHED_CALL_STATES = frozenset({CallState.ENDED, CallState.FAILED, CallState.INTERRUPTED})


class HangupParty(StrEnum):
    OPERATOR = "operator"
    REMOTE = "remote"
    SYSTEM = "system"


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    login: Mapped[str] = mapped_column(String(100))
    # casefolded login: uniqueness and lookup are case-insensitive
    login_key: Mapped[str] = mapped_column(String(100), unique=True)
    display_name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))  # dialer.actors.Role value
    team_id: Mapped[int | None] = mapped_column(ForeignKey("teams.id"), index=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    password_changed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    # Fernet token of the base32 TOTP secret; None = no second factor.
    totp_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    # CIDR strings; empty = no per-user restriction.
    allowed_networks: Mapped[list[str]] = mapped_column(JSON, default=list)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    # Number or extension rung for the phone-callback leg.
    phone_extension: Mapped[str | None] = mapped_column(String(40))
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)

    team: Mapped[Team | None] = relationship(lazy="raise")

    __table_args__ = (
        CheckConstraint("role IN ('operator', 'supervisor', 'admin')", name="ck_users_role"),
    )


class RoleAllowList(Base):
    """CIDRs a role may log in from; no rows for a role = no restriction."""

    __tablename__ = "role_allow_lists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    role: Mapped[str] = mapped_column(String(20), index=True)
    network: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)

    __table_args__ = (UniqueConstraint("role", "network"),)


class LoginThrottle(Base):
    """Failure counters per login name (``kind='account'``, existing or not) or source IP."""

    __tablename__ = "login_throttles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))  # 'account' | 'source'
    key: Mapped[str] = mapped_column(String(100))
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    window_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    window_failures: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_failure_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (UniqueConstraint("kind", "key"),)


class WebSession(Base):
    """A server-side browser session; the cookie token is stored only as its SHA-256."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    source_ip: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)  # absolute limit
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_reason: Mapped[str | None] = mapped_column(String(40))


class ContactStatus(Base):
    """An entry of the configurable status (disposition) list."""

    __tablename__ = "contact_statuses"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    label: Mapped[str] = mapped_column(String(100))
    is_final: Mapped[bool] = mapped_column(Boolean, default=False)
    is_do_not_call: Mapped[bool] = mapped_column(Boolean, default=False)
    is_callback: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Contact(Base):
    """A lead and its company in one card."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    company: Mapped[str] = mapped_column(String(200), default="")
    position: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(254))
    timezone: Mapped[str | None] = mapped_column(String(64))
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    status: Mapped[str] = mapped_column(ForeignKey("contact_statuses.code"), default="new")
    follow_up_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    follow_up_note: Mapped[str | None] = mapped_column(Text)
    tags: Mapped[list[str]] = mapped_column(JSON, default=list)
    notes: Mapped[str] = mapped_column(Text, default="")
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    # lower-cased "name company email" kept by the use cases; trigram-indexed for search
    search_text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    updated_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    deleted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    phones: Mapped[list[ContactPhone]] = relationship(
        back_populates="contact",
        cascade="all, delete-orphan",
        order_by="ContactPhone.position",
        lazy="selectin",
    )

    __table_args__ = (
        Index("ix_contacts_owner_id", "owner_id"),
        Index("ix_contacts_status", "status"),
        Index("ix_contacts_follow_up_at", "follow_up_at"),
        Index("ix_contacts_deleted_at", "deleted_at"),
        Index("ix_contacts_search_text", "search_text"),
    )

    @property
    def primary_phone(self) -> ContactPhone | None:
        for phone in self.phones:
            if phone.is_primary:
                return phone
        return self.phones[0] if self.phones else None


class ContactPhone(Base):
    __tablename__ = "contact_phones"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True)
    contact_id: Mapped[int] = mapped_column(
        BigKey, ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    e164: Mapped[str] = mapped_column(String(20))
    raw: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10), default=PhoneKind.MOBILE.value)
    is_primary: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)

    contact: Mapped[Contact] = relationship(back_populates="phones", lazy="raise")

    __table_args__ = (Index("ix_contact_phones_e164", "e164", "contact_id"),)


class Call(Base):
    """One call; the row exists from creation and follows every state transition."""

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True)
    direction: Mapped[str] = mapped_column(String(10), default=CallDirection.OUTBOUND.value)
    contact_id: Mapped[int | None] = mapped_column(
        BigKey, ForeignKey("contacts.id", ondelete="SET NULL")
    )
    phone_e164: Mapped[str] = mapped_column(String(20))
    phone_raw: Mapped[str] = mapped_column(String(100), default="")
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    account_name: Mapped[str | None] = mapped_column(String(100))  # SIP account used
    campaign_id: Mapped[int | None] = mapped_column(BigInteger)
    sip_call_id: Mapped[str | None] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(12), default=CallState.CREATED.value)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    dialing_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ringing_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ring_seconds: Mapped[float | None] = mapped_column(Float)
    talk_seconds: Mapped[float | None] = mapped_column(Float)
    end_cause: Mapped[str | None] = mapped_column(String(60))
    sip_code: Mapped[int | None] = mapped_column(Integer)
    sip_reason: Mapped[str | None] = mapped_column(String(200))
    hangup_by: Mapped[str | None] = mapped_column(String(10))  # HangupParty value
    outcome: Mapped[str | None] = mapped_column(ForeignKey("contact_statuses.code"))
    outcome_note: Mapped[str | None] = mapped_column(Text)
    outcome_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    follow_up_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    deleted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    recordings: Mapped[list[Recording]] = relationship(
        back_populates="call", order_by="Recording.id", lazy="selectin"
    )

    __table_args__ = (
        Index("ix_calls_contact_id_created_at", "contact_id", "created_at"),
        Index("ix_calls_operator_id_created_at", "operator_id", "created_at"),
        Index("ix_calls_created_at", "created_at"),
        Index("ix_calls_state", "state"),
        Index("ix_calls_sip_call_id", "sip_call_id"),
        Index("ix_calls_campaign_id", "campaign_id"),
    )


class Recording(Base):
    """A recording of a call (a call may have several: pause/resume makes segments).

    Filled by the recordings area through ``dialer.calls.attach_recording``.
    """

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True)
    call_id: Mapped[int] = mapped_column(BigKey, ForeignKey("calls.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(500))  # relative to Settings.recordings_dir
    codec: Mapped[str] = mapped_column(String(40))
    channels: Mapped[int] = mapped_column(Integer, default=2)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    duration_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    sha256: Mapped[str | None] = mapped_column(String(64))
    transcript_path: Mapped[str | None] = mapped_column(String(500))
    transcript_status: Mapped[str | None] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utc_now)
    deleted_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    call: Mapped[Call] = relationship(back_populates="recordings", lazy="raise")

    __table_args__ = (Index("ix_recordings_call_id", "call_id"),)


class AuditEvent(Base):
    """Append-only log row; ``row_hash`` = sha256 of its canonical JSON incl. ``previous_hash``.

    ``id`` is assigned by ``dialer.audit`` (previous id + 1) under the chain-head lock.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(BigKey, primary_key=True, autoincrement=False)
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor_user_id: Mapped[int | None] = mapped_column(Integer)
    actor_login: Mapped[str | None] = mapped_column(String(100))
    source_ip: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(60))
    target: Mapped[str | None] = mapped_column(String(200))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    previous_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_audit_events_occurred_at", "occurred_at"),
        Index("ix_audit_events_action", "action"),
        Index("ix_audit_events_actor_user_id", "actor_user_id"),
    )


class AuditChainHead(Base):
    """The single row (id 1) naming the last audit event; appenders lock it to serialize."""

    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_event_id: Mapped[int] = mapped_column(BigInteger, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))
    event_count: Mapped[int] = mapped_column(BigInteger, default=0)

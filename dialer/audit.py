"""The append-only, hash-chained audit log.

Each ``AuditEvent`` stores ``previous_hash`` (the ``row_hash`` of the event before it, or
``GENESIS_HASH``) and ``row_hash`` = SHA-256 of the canonical JSON of all its fields. The single
``AuditChainHead`` row names the last event: appenders take it with ``UPDATE ... RETURNING``, which
serializes appends on PostgreSQL (row lock) and SQLite (write lock) until the transaction ends,
and lets ``verify_audit_chain`` notice a deleted tail.

Appends within one transaction lock the head once and are flushed in batches, so a caller that
appends many events in one transaction is fast. Standalone events (a recording played, an
export, a login) that need not be atomic with a data change can go through
``dialer.audit_appender.AuditAppender``, which commits the events of concurrent callers together
(one transaction, one fsync per batch).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.actors import Actor
from dialer.errors import PermissionDenied
from dialer.models import AuditChainHead, AuditEvent, User, utc_now
from dialer.pagination import Page, check_page_bounds, page_is_last

GENESIS_HASH = "0" * 64
CHAIN_HEAD_ID = 1
_HEAD_CACHE_KEY = "dialer.audit.chain_head"
_VERIFY_BATCH = 5000


@dataclass(frozen=True)
class AuditProblem:
    """A break in the chain. ``kind``: 'edited' (row hash does not match its fields), 'inserted'
    (row not part of the original chain), 'missing' (rows deleted before ``audit_event_id``, or
    the row before it rewritten), 'tail_missing' (last rows deleted)."""

    audit_event_id: int
    kind: str
    detail: str


def canonical_event_json(event: AuditEvent) -> str:
    """The canonical JSON hashed into ``row_hash`` (sorted keys, no spaces, UTF-8)."""
    return _canonical_json(
        event.id,
        event.occurred_at,
        event.actor_user_id,
        event.actor_login,
        event.source_ip,
        event.action,
        event.target,
        event.summary,
        event.previous_hash,
    )


def _canonical_json(
    event_id: int,
    occurred_at: datetime,
    actor_user_id: int | None,
    actor_login: str | None,
    source_ip: str | None,
    action: str,
    target: str | None,
    summary: Any,
    previous_hash: str,
) -> str:
    fields = {
        "id": event_id,
        "occurred_at": occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor_user_id": actor_user_id,
        "actor_login": actor_login,
        "source_ip": source_ip,
        "action": action,
        "target": target,
        "summary": summary,
        "previous_hash": previous_hash,
    }
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(event: AuditEvent) -> str:
    return _sha256(canonical_event_json(event))


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalised_summary(summary: Mapping[str, Any] | None) -> dict[str, Any]:
    """``summary`` as it is stored and hashed (a JSON round trip: tuples become lists, keys
    strings). Raises TypeError or ValueError when it is not JSON-serializable."""
    normalised: dict[str, Any] = json.loads(json.dumps(dict(summary or {}), ensure_ascii=False))
    return normalised


async def _locked_chain_head(session: AsyncSession) -> AuditChainHead:
    transaction = session.get_transaction()
    cached = session.info.get(_HEAD_CACHE_KEY)
    if cached is not None and transaction is not None and cached[0] is transaction:
        head: AuditChainHead = cached[1]
        return head
    statement = (
        update(AuditChainHead)
        .where(AuditChainHead.id == CHAIN_HEAD_ID)
        .values(event_count=AuditChainHead.event_count)
        .returning(AuditChainHead)
        .execution_options(populate_existing=True)
    )
    head_or_none = (await session.scalars(statement)).one_or_none()
    if head_or_none is None:
        raise RuntimeError("audit chain head missing: run upgrade_database")
    session.info[_HEAD_CACHE_KEY] = (session.get_transaction(), head_or_none)
    return head_or_none


async def append_audit_event(
    session: AsyncSession,
    actor: Actor | None,
    action: str,
    target: str | None,
    summary: Mapping[str, Any] | None = None,
    source_ip: str | None = None,
    *,
    now: datetime | None = None,
    actor_login: str | None = None,
) -> AuditEvent:
    """Append one event (in the caller's transaction; the caller commits).

    ``actor`` None = the system. ``source_ip`` defaults to ``actor.source_ip``. ``action`` is a
    dotted verb like "contact.update", "user.login_failed"; ``target`` like "contact:42";
    ``summary`` must be JSON-serializable (use strings for datetimes). ``actor_login`` is recorded
    when known (e.g. failed logins, where there is no actor).
    """
    head = await _locked_chain_head(session)
    occurred_at = now if now is not None else utc_now()
    event = AuditEvent(
        id=head.last_event_id + 1,
        occurred_at=occurred_at,
        actor_user_id=actor.user_id if actor is not None else None,
        actor_login=actor_login,
        source_ip=source_ip if source_ip is not None else (actor.source_ip if actor else None),
        action=action,
        target=target,
        summary=normalised_summary(summary),
        previous_hash=head.last_hash,
    )
    event.row_hash = event_hash(event)
    head.last_event_id = event.id
    head.last_hash = event.row_hash
    head.event_count += 1
    session.add(event)
    return event


@dataclass(frozen=True)
class AuditEntry:
    """One event for ``append_audit_events``; the fields mean what the arguments of
    ``append_audit_event`` mean (``occurred_at`` None = when it is appended)."""

    actor: Actor | None
    action: str
    target: str | None
    summary: Mapping[str, Any] | None = None
    source_ip: str | None = None
    occurred_at: datetime | None = None
    actor_login: str | None = None


async def append_audit_events(session: AsyncSession, entries: Sequence[AuditEntry]) -> list[int]:
    """Append ``entries`` in order (in the caller's transaction; the caller commits) with one
    multi-row INSERT, and return their ids: the same rows and chain as ``append_audit_event``
    for each, without an ORM object per event. Raises TypeError or ValueError, before anything
    is written, when a summary is not JSON-serializable."""
    prepared = [(entry, normalised_summary(entry.summary)) for entry in entries]
    if not prepared:
        return []
    head = await _locked_chain_head(session)
    appended_at = utc_now()
    event_id = head.last_event_id
    previous_hash = head.last_hash
    rows: list[dict[str, Any]] = []
    for entry, summary in prepared:
        event_id += 1
        actor = entry.actor
        occurred_at = entry.occurred_at if entry.occurred_at is not None else appended_at
        actor_user_id = actor.user_id if actor is not None else None
        source_ip = entry.source_ip
        if source_ip is None and actor is not None:
            source_ip = actor.source_ip
        row_hash = _sha256(
            _canonical_json(
                event_id,
                occurred_at,
                actor_user_id,
                entry.actor_login,
                source_ip,
                entry.action,
                entry.target,
                summary,
                previous_hash,
            )
        )
        rows.append(
            {
                "id": event_id,
                "occurred_at": occurred_at,
                "actor_user_id": actor_user_id,
                "actor_login": entry.actor_login,
                "source_ip": source_ip,
                "action": entry.action,
                "target": entry.target,
                "summary": summary,
                "previous_hash": previous_hash,
                "row_hash": row_hash,
            }
        )
        previous_hash = row_hash
    await session.execute(insert(AuditEvent), rows)
    head.last_event_id = event_id
    head.last_hash = previous_hash
    head.event_count += len(rows)
    return [row["id"] for row in rows]


@dataclass(frozen=True)
class _ChainLink:
    event_id: int
    previous_hash: str
    stored_hash: str
    computed_hash: str


async def verify_audit_chain(session: AsyncSession) -> list[AuditProblem]:
    """Walk the whole chain in id order and report every break (empty list = intact).

    Streams the table in batches with one row of look-ahead, so memory stays flat.
    """
    problems: list[AuditProblem] = []
    accepted_hash = GENESIS_HASH
    before_accepted_hash: str | None = None
    last_accepted_id: int | None = None
    last_id = 0
    links = _links_in_order(session)
    link = await anext(links, None)
    while link is not None:
        following = await anext(links, None)
        last_id = link.event_id
        if link.computed_hash != link.stored_hash:
            problems.append(
                AuditProblem(link.event_id, "edited", "stored hash does not match the row's fields")
            )
        if link.previous_hash == accepted_hash:
            before_accepted_hash, accepted_hash = accepted_hash, link.stored_hash
            last_accepted_id = link.event_id
        elif following is not None and following.previous_hash == accepted_hash:
            problems.append(
                AuditProblem(link.event_id, "inserted", "row is not linked in the chain")
            )
        else:
            if before_accepted_hash is not None and link.previous_hash == before_accepted_hash:
                assert last_accepted_id is not None
                problems.append(
                    AuditProblem(last_accepted_id, "inserted", "row was inserted between two rows")
                )
            else:
                previous = f"row {last_accepted_id}" if last_accepted_id else "the chain start"
                problems.append(
                    AuditProblem(
                        link.event_id,
                        "missing",
                        f"link to {previous} is broken: rows deleted before it or {previous} "
                        "rewritten",
                    )
                )
            before_accepted_hash, accepted_hash = accepted_hash, link.stored_hash
            last_accepted_id = link.event_id
        link = following
    head = await session.get(AuditChainHead, CHAIN_HEAD_ID, populate_existing=True)
    if head is not None and head.last_event_id > last_id:
        problems.append(
            AuditProblem(
                head.last_event_id,
                "tail_missing",
                f"the chain head names row {head.last_event_id} but the last row is {last_id}",
            )
        )
    elif head is not None and head.last_event_id < last_id:
        problems.append(AuditProblem(last_id, "inserted", "row is after the recorded chain head"))
    return problems


async def _links_in_order(session: AsyncSession) -> AsyncIterator[_ChainLink]:
    columns = (
        AuditEvent.id,
        AuditEvent.occurred_at,
        AuditEvent.actor_user_id,
        AuditEvent.actor_login,
        AuditEvent.source_ip,
        AuditEvent.action,
        AuditEvent.target,
        AuditEvent.summary,
        AuditEvent.previous_hash,
        AuditEvent.row_hash,
    )
    after = -1
    while True:
        batch = (
            await session.execute(
                select(*columns)
                .where(AuditEvent.id > after)
                .order_by(AuditEvent.id)
                .limit(_VERIFY_BATCH)
            )
        ).all()
        if not batch:
            return
        for row in batch:
            computed = _sha256(_canonical_json(*row[:9]))
            yield _ChainLink(row.id, row.previous_hash, row.row_hash, computed)
        after = batch[-1].id


@dataclass(frozen=True)
class AuditQuery:
    action: str | None = None
    actor_user_id: int | None = None
    target: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 100
    offset: int = 0


async def list_audit_events(
    session: AsyncSession, actor: Actor, query: AuditQuery = AuditQuery()
) -> Page[AuditEvent]:
    """Newest first. Admins see everything; supervisors see events of their team's users."""
    check_page_bounds(query.limit, query.offset)
    statement = select(AuditEvent)
    if not actor.is_admin:
        if not actor.is_supervisor or actor.team_id is None:
            raise PermissionDenied("only admins and supervisors read the audit log")
        team_users = select(User.id).where(User.team_id == actor.team_id)
        statement = statement.where(AuditEvent.actor_user_id.in_(team_users))
    if query.action is not None:
        statement = statement.where(AuditEvent.action == query.action)
    if query.actor_user_id is not None:
        statement = statement.where(AuditEvent.actor_user_id == query.actor_user_id)
    if query.target is not None:
        statement = statement.where(AuditEvent.target == query.target)
    if query.since is not None:
        statement = statement.where(AuditEvent.occurred_at >= query.since)
    if query.until is not None:
        statement = statement.where(AuditEvent.occurred_at < query.until)
    items = (
        await session.scalars(
            statement.order_by(AuditEvent.id.desc()).limit(query.limit).offset(query.offset)
        )
    ).all()
    if page_is_last(items, query.limit, query.offset):
        total: int | None = query.offset + len(items)
    else:
        total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    return Page(items=items, total=total or 0, limit=query.limit, offset=query.offset)

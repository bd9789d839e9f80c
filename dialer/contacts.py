"""Contacts: the lead and the company on one card; create, change, search, delete.

Visibility (``visible_contacts``): operators see their own contacts and shared ones; supervisors
their team members' contacts and shared ones; admins everything. Deleting is soft (``deleted_at``);
only admins purge rows for good. Every change is audited.

Search: a text that looks like a phone number matches phone prefixes (range scan on
``contact_phones.e164``); other text matches substrings of "name company email" (each word must
occur) through a trigram index (PostgreSQL pg_trgm GIN, SQLite FTS5 trigram table
``contact_search`` kept by triggers). A text made only of words shorter than three characters
matches the start of the name instead (range scan on ``contacts.search_text``). On PostgreSQL the
plan is chosen from a bounded count of the matches (see "PostgreSQL plan choice" below); SQLite's
FTS5 join yields matches newest first by itself.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, fields
from datetime import datetime
from enum import Enum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Integer,
    MetaData,
    Select,
    Table,
    Text,
    and_,
    any_,
    bindparam,
    cast,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.actors import Actor
from dialer.audit import append_audit_event
from dialer.errors import NotFound, PermissionDenied, ValidationFailed
from dialer.models import Contact, ContactPhone, PhoneKind, User, utc_now
from dialer.pagination import Page, check_page_bounds, count_cap, page_is_last
from dialer.phones import (
    normalise_phone,
    phone_search_prefix,
    prefix_upper_bound,
    timezone_for_number,
)
from dialer.statuses import NEW_STATUS, get_status

DEFAULT_REGION = "RU"
MAXIMUM_TAG_LENGTH = 50
MINIMUM_TRIGRAM_LENGTH = 3
_EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


@dataclass(frozen=True)
class PhoneInput:
    """A phone as typed: ``raw`` is normalised to E.164 and kept as typed."""

    raw: str
    kind: PhoneKind | str | None = None  # None: guessed (mobile / work)
    primary: bool = False


@dataclass(frozen=True)
class ContactInput:
    """Fields of a new contact. ``owner_id`` None = the actor; ``status`` None = "new";
    ``timezone`` None = derived from the primary phone when the number has one zone."""

    name: str = ""
    company: str = ""
    position: str = ""
    phones: Sequence[PhoneInput] = ()
    email: str | None = None
    timezone: str | None = None
    owner_id: int | None = None
    status: str | None = None
    follow_up_at: datetime | None = None
    follow_up_note: str | None = None
    tags: Sequence[str] = ()
    notes: str = ""
    custom_fields: Mapping[str, Any] = field(default_factory=dict)
    shared: bool = False


CONTACT_FIELDS = frozenset(f.name for f in fields(ContactInput))


@dataclass(frozen=True)
class ContactQuery:
    """Search filters; all optional. ``text``: name/company/email substring or phone prefix.

    ``include_deleted`` / ``only_deleted`` are honoured for admins only.
    """

    text: str | None = None
    status: str | None = None
    owner_id: int | None = None
    follow_up_due_before: datetime | None = None
    tag: str | None = None
    shared: bool | None = None
    only_deleted: bool = False
    limit: int = 50
    offset: int = 0
    region: str = DEFAULT_REGION
    # Stop counting matches after this many (Page.total_is_exact is then False).
    count_cap: int = 500


def normalise_search_text(value: str) -> str:
    """Lower-case, ё -> е, whitespace collapsed: the form stored in ``Contact.search_text``."""
    return " ".join(value.lower().replace("ё", "е").split())


def search_text_for(name: str, company: str, email: str | None) -> str:
    """``Contact.search_text`` of a contact with these fields (bulk importers fill the column
    with it; ``contact_search_text`` is the same for a loaded contact)."""
    return normalise_search_text(" ".join(part for part in (name, company, email or "") if part))


def contact_search_text(contact: Contact) -> str:
    return search_text_for(contact.name, contact.company, contact.email)


# --- visibility --------------------------------------------------------------------------------


def visible_contacts(actor: Actor) -> ColumnElement[bool]:
    """The WHERE clause of contacts ``actor`` may see (deleted rows are filtered separately)."""
    if actor.is_admin:
        return true()
    if actor.is_supervisor and actor.team_id is not None:
        team_members = select(User.id).where(User.team_id == actor.team_id)
        return or_(Contact.owner_id.in_(team_members), Contact.shared.is_(True))
    return or_(Contact.owner_id == actor.user_id, Contact.shared.is_(True))


async def _check_owner_assignable(session: AsyncSession, actor: Actor, owner_id: int) -> None:
    if actor.is_admin or owner_id == actor.user_id:
        if await session.get(User, owner_id) is None:
            raise ValidationFailed("owner_id", f"no user {owner_id}")
        return
    owner = await session.get(User, owner_id)
    if owner is None:
        raise ValidationFailed("owner_id", f"no user {owner_id}")
    if not (actor.is_supervisor and actor.team_id is not None and owner.team_id == actor.team_id):
        raise PermissionDenied("you may not give contacts to that user")


# --- validation --------------------------------------------------------------------------------


def _phones(values: Sequence[PhoneInput | Mapping[str, Any]], region: str) -> list[ContactPhone]:
    phones: list[ContactPhone] = []
    seen: set[str] = set()
    primary_given = False
    for position, value in enumerate(values):
        phone_input = value if isinstance(value, PhoneInput) else PhoneInput(**dict(value))
        normalised = normalise_phone(phone_input.raw, region, phone_input.kind)
        if normalised.e164 in seen:
            raise ValidationFailed("phones", f"{normalised.e164} is listed twice")
        seen.add(normalised.e164)
        is_primary = phone_input.primary and not primary_given
        primary_given = primary_given or is_primary
        phones.append(
            ContactPhone(
                e164=normalised.e164,
                raw=normalised.raw,
                kind=normalised.kind.value,
                is_primary=is_primary,
                position=position,
            )
        )
    if phones and not primary_given:
        phones[0].is_primary = True
    return phones


def _text(name: str, value: object, maximum: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationFailed(name, "must be text")
    value = value.strip()
    if len(value) > maximum:
        raise ValidationFailed(name, f"at most {maximum} characters")
    return value


def _email(value: object) -> str | None:
    text_value = _text("email", value, 254)
    if not text_value:
        return None
    if not _EMAIL_PATTERN.match(text_value):
        raise ValidationFailed("email", f"not an e-mail address: {text_value!r}")
    return text_value


def _timezone(value: object) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValidationFailed("timezone", "must be text")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValidationFailed("timezone", f"unknown time zone {value!r}") from error
    return value


def _tags(value: object) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise ValidationFailed("tags", "must be a list of text")
    tags: list[str] = []
    for tag in value:
        if not isinstance(tag, str):
            raise ValidationFailed("tags", "must be a list of text")
        cleaned = " ".join(tag.split())
        if len(cleaned) > MAXIMUM_TAG_LENGTH:
            raise ValidationFailed("tags", f"a tag has at most {MAXIMUM_TAG_LENGTH} characters")
        if cleaned and cleaned not in tags:
            tags.append(cleaned)
    return tags


def _custom_fields(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationFailed("custom_fields", "must be an object")
    try:
        result: dict[str, Any] = json.loads(json.dumps(dict(value), ensure_ascii=False))
    except (TypeError, ValueError) as error:
        raise ValidationFailed("custom_fields", "must be JSON-serializable") from error
    return result


def _datetime(name: str, value: object) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise ValidationFailed(name, "must be a timezone-aware datetime")
    return value


def _bool(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValidationFailed(name, "must be true or false")
    return value


def _derive_timezone(contact: Contact) -> None:
    if contact.timezone is None and contact.phones:
        primary = contact.primary_phone
        if primary is not None:
            contact.timezone = timezone_for_number(primary.e164)


# --- use cases ---------------------------------------------------------------------------------


async def create_contact(
    session: AsyncSession,
    actor: Actor,
    data: ContactInput,
    *,
    default_region: str = DEFAULT_REGION,
    now: datetime | None = None,
    audit: bool = True,
) -> Contact:
    """A new contact owned by ``data.owner_id`` (default: the actor). Raises ValidationFailed,
    PermissionDenied (owner outside the actor's reach). ``audit=False`` is for bulk importers
    that audit the whole import once."""
    now = now if now is not None else utc_now()
    owner_id = data.owner_id if data.owner_id is not None else actor.user_id
    await _check_owner_assignable(session, actor, owner_id)
    status = await get_status(session, data.status or NEW_STATUS)
    contact = Contact(
        name=_text("name", data.name, 200),
        company=_text("company", data.company, 200),
        position=_text("position", data.position, 200),
        email=_email(data.email),
        timezone=_timezone(data.timezone),
        owner_id=owner_id,
        status=status.code,
        follow_up_at=_datetime("follow_up_at", data.follow_up_at),
        follow_up_note=_text("follow_up_note", data.follow_up_note, 2000) or None,
        tags=_tags(list(data.tags)),
        notes=_text("notes", data.notes, 100_000),
        custom_fields=_custom_fields(data.custom_fields),
        shared=_bool("shared", data.shared),
        created_at=now,
        created_by_id=actor.user_id,
        updated_at=now,
        updated_by_id=actor.user_id,
        phones=_phones(data.phones, default_region),
    )
    if not (contact.name or contact.company or contact.phones):
        raise ValidationFailed("name", "a contact needs a name, a company or a phone")
    _derive_timezone(contact)
    contact.search_text = contact_search_text(contact)
    session.add(contact)
    await session.flush()
    if audit:
        await append_audit_event(
            session,
            actor,
            "contact.create",
            f"contact:{contact.id}",
            {"owner_id": owner_id},
            now=now,
        )
    return contact


async def get_contact(
    session: AsyncSession, actor: Actor, contact_id: int, *, include_deleted: bool = False
) -> Contact:
    """A visible, not deleted contact (admins may ask for deleted ones); else NotFound."""
    statement = select(Contact).where(Contact.id == contact_id, visible_contacts(actor))
    if not (include_deleted and actor.is_admin):
        statement = statement.where(Contact.deleted_at.is_(None))
    contact = (await session.scalars(statement)).one_or_none()
    if contact is None:
        raise NotFound(f"contact {contact_id}")
    return contact


async def update_contact(
    session: AsyncSession,
    actor: Actor,
    contact_id: int,
    changes: Mapping[str, object],
    *,
    default_region: str = DEFAULT_REGION,
    now: datetime | None = None,
) -> Contact:
    """Apply ``changes`` (keys: the ContactInput field names; ``phones`` replaces all phones
    and takes PhoneInput or {"raw", "kind", "primary"} mappings). Returns the contact."""
    unknown = set(changes) - CONTACT_FIELDS
    if unknown:
        raise ValidationFailed(sorted(unknown)[0], "is not a contact field")
    now = now if now is not None else utc_now()
    contact = await get_contact(session, actor, contact_id)
    changed: list[str] = []

    def assign(name: str, value: object) -> None:
        if getattr(contact, name) != value:
            setattr(contact, name, value)
            changed.append(name)

    for name, value in changes.items():
        match name:
            case "name" | "company" | "position":
                assign(name, _text(name, value, 200))
            case "email":
                assign(name, _email(value))
            case "timezone":
                assign(name, _timezone(value))
            case "owner_id":
                if not isinstance(value, int):
                    raise ValidationFailed("owner_id", "must be a user id")
                if value != contact.owner_id:
                    await _check_owner_assignable(session, actor, value)
                assign(name, value)
            case "status":
                if not isinstance(value, str):
                    raise ValidationFailed("status", "must be a status code")
                assign(name, (await get_status(session, value)).code)
            case "follow_up_at":
                assign(name, _datetime(name, value))
            case "follow_up_note":
                assign(name, _text(name, value, 2000) or None)
            case "tags":
                assign(name, _tags(value))
            case "notes":
                assign(name, _text(name, value, 100_000))
            case "custom_fields":
                assign(name, _custom_fields(value))
            case "shared":
                assign(name, _bool(name, value))
            case "phones":
                if isinstance(value, str | bytes) or not isinstance(value, Sequence):
                    raise ValidationFailed("phones", "must be a list")
                new_phones = _phones(value, default_region)
                old = [(p.e164, p.raw, p.kind, p.is_primary) for p in contact.phones]
                new = [(p.e164, p.raw, p.kind, p.is_primary) for p in new_phones]
                if old != new:
                    contact.phones.clear()
                    await session.flush()
                    contact.phones.extend(new_phones)
                    changed.append("phones")
    if "timezone" not in changes and "phones" in changed and contact.timezone is None:
        _derive_timezone(contact)
    if not (contact.name or contact.company or contact.phones):
        raise ValidationFailed("name", "a contact needs a name, a company or a phone")
    if changed:
        contact.search_text = contact_search_text(contact)
        contact.updated_at = now
        contact.updated_by_id = actor.user_id
        await append_audit_event(
            session,
            actor,
            "contact.update",
            f"contact:{contact.id}",
            {"fields": changed},
            now=now,
        )
        await session.flush()
    return contact


async def soft_delete_contact(
    session: AsyncSession, actor: Actor, contact_id: int, *, now: datetime | None = None
) -> Contact:
    """Hide a contact (it stays in the database for admins until purged)."""
    now = now if now is not None else utc_now()
    contact = await get_contact(session, actor, contact_id)
    if not actor.is_admin and contact.owner_id != actor.user_id and not actor.is_supervisor:
        raise PermissionDenied("only the owner, a supervisor or an admin deletes a contact")
    contact.deleted_at = now
    contact.deleted_by_id = actor.user_id
    await append_audit_event(session, actor, "contact.delete", f"contact:{contact.id}", {}, now=now)
    return contact


async def restore_contact(
    session: AsyncSession, actor: Actor, contact_id: int, *, now: datetime | None = None
) -> Contact:
    """Undo a soft delete (admin)."""
    if not actor.is_admin:
        raise PermissionDenied("only admins restore deleted contacts")
    contact = await get_contact(session, actor, contact_id, include_deleted=True)
    contact.deleted_at = None
    contact.deleted_by_id = None
    await append_audit_event(
        session, actor, "contact.restore", f"contact:{contact.id}", {}, now=now
    )
    return contact


async def purge_contact(
    session: AsyncSession, actor: Actor, contact_id: int, *, now: datetime | None = None
) -> None:
    """Remove a contact and its phones for good (admin; audited). Calls keep their number but
    lose the link to the contact."""
    if not actor.is_admin:
        raise PermissionDenied("only admins purge contacts")
    contact = await get_contact(session, actor, contact_id, include_deleted=True)
    await session.delete(contact)
    await session.flush()
    await append_audit_event(session, actor, "contact.purge", f"contact:{contact_id}", {}, now=now)


async def find_contacts_by_phone(
    session: AsyncSession, e164: str, actor: Actor | None = None
) -> Sequence[Contact]:
    """Not deleted contacts with the number ``e164`` (visible to ``actor`` if given), newest
    first."""
    statement = (
        select(Contact)
        .where(
            Contact.id.in_(select(ContactPhone.contact_id).where(ContactPhone.e164 == e164)),
            Contact.deleted_at.is_(None),
        )
        .order_by(Contact.id.desc())
    )
    if actor is not None:
        statement = statement.where(visible_contacts(actor))
    return (await session.scalars(statement)).all()


def _words(value: str) -> list[str]:
    return normalise_search_text(value).split()


def _essential_words(words: Sequence[str]) -> list[str]:
    """The substrings that must occur, without repeats and without words inside other words
    ("поляк пол" needs only "поляк"): the same matches, and PostgreSQL's estimate of how many
    there are is not thrown off by two conditions that are really one."""
    words = list(dict.fromkeys(words))
    return [
        word
        for index, word in enumerate(words)
        if not any(word in other for other in words[:index] + words[index + 1 :])
    ]


def _like_pattern(word: str) -> str:
    escaped = word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _fts_query(words: Sequence[str]) -> str:
    return " AND ".join('"' + word.replace('"', '""') + '"' for word in words)


# The SQLite FTS5 trigram table (created by the migration, not part of the ORM metadata).
_CONTACT_SEARCH = Table(
    "contact_search", MetaData(), Column("rowid", Integer), Column("search_text", Text)
)


class _TextKind(Enum):
    """How a search text is matched (the plan choice on PostgreSQL depends on it)."""

    NONE = "none"
    PHONE_PREFIX = "phone prefix"
    NAME_START = "name start"
    SUBSTRING = "substring"


@dataclass(frozen=True)
class _SearchPlan:
    statement: Select[Contact]
    newest_first: ColumnElement[Any]
    text_kind: _TextKind
    phone_prefix: str | None = None


def _phone_range(prefix: str) -> ColumnElement[bool]:
    return and_(ContactPhone.e164 >= prefix, ContactPhone.e164 < prefix_upper_bound(prefix))


def _with_text_filter(
    statement: Select[Contact],
    dialect: str,
    query_text: str,
    region: str,
    phone_owners: Sequence[int] | None,
) -> _SearchPlan:
    """Add the text condition. ``phone_owners``: the contacts known to hold the phone prefix
    (used instead of a subquery when the caller looked them up)."""
    newest_first: ColumnElement[Any] = Contact.id.desc()
    prefix = phone_search_prefix(query_text, region)
    if prefix is not None:
        condition: ColumnElement[bool]
        if phone_owners is not None:
            # One array parameter (PostgreSQL only): the statement text stays the same whatever
            # the number of ids, so the server does not parse and plan a new one each time.
            owners = bindparam("phone_owners", list(phone_owners), type_=ARRAY(BigInteger))
            condition = Contact.id == any_(owners)
        else:
            condition = Contact.id.in_(select(ContactPhone.contact_id).where(_phone_range(prefix)))
        return _SearchPlan(statement.where(condition), newest_first, _TextKind.PHONE_PREFIX, prefix)
    words = _words(query_text)
    if not words:
        return _SearchPlan(statement, newest_first, _TextKind.NONE)
    if all(len(word) < MINIMUM_TRIGRAM_LENGTH for word in words):
        # Too short for trigrams: match the start of the name (an index range scan).
        start = " ".join(words)
        start_condition = and_(
            Contact.search_text >= start, Contact.search_text < prefix_upper_bound(start)
        )
        return _SearchPlan(statement.where(start_condition), newest_first, _TextKind.NAME_START)
    words = _essential_words(words)
    if dialect == "sqlite":
        long_words = [word for word in words if len(word) >= MINIMUM_TRIGRAM_LENGTH]
        # Join the FTS table and order by its rowid: FTS5 then yields matches newest first and
        # the query stops after one page instead of collecting every match.
        statement = statement.join(_CONTACT_SEARCH, _CONTACT_SEARCH.c.rowid == Contact.id).where(
            _CONTACT_SEARCH.c.search_text.op("MATCH")(_fts_query(long_words))
        )
        newest_first = _CONTACT_SEARCH.c.rowid.desc()
        words = [word for word in words if len(word) < MINIMUM_TRIGRAM_LENGTH]
    for word in words:
        statement = statement.where(Contact.search_text.like(_like_pattern(word), escape="\\"))
    return _SearchPlan(statement, newest_first, _TextKind.SUBSTRING)


def _search_statement(
    dialect: str, actor: Actor, query: ContactQuery, phone_owners: Sequence[int] | None = None
) -> _SearchPlan:
    statement = select(Contact).where(visible_contacts(actor))
    if query.only_deleted and actor.is_admin:
        statement = statement.where(Contact.deleted_at.is_not(None))
    else:
        statement = statement.where(Contact.deleted_at.is_(None))
    if query.status is not None:
        statement = statement.where(Contact.status == query.status)
    if query.owner_id is not None:
        statement = statement.where(Contact.owner_id == query.owner_id)
    if query.follow_up_due_before is not None:
        statement = statement.where(Contact.follow_up_at < query.follow_up_due_before)
    if query.shared is not None:
        statement = statement.where(Contact.shared.is_(query.shared))
    if query.tag is not None:
        statement = statement.where(_tag_filter(dialect, query.tag))
    if query.text:
        return _with_text_filter(statement, dialect, query.text, query.region, phone_owners)
    return _SearchPlan(statement, Contact.id.desc(), _TextKind.NONE)


def _tag_filter(dialect: str, tag: str) -> ColumnElement[bool]:
    cleaned = " ".join(tag.split())
    if not cleaned:
        return false()
    if dialect == "postgresql":
        return cast(Contact.tags, JSONB).contains([cleaned])
    each = func.json_each(Contact.tags).table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value == cleaned))


async def search_contacts(
    session: AsyncSession, actor: Actor, query: ContactQuery = ContactQuery()
) -> Page[Contact]:
    """Visible contacts matching ``query``, newest first, one page.

    Counting stops at ``query.count_cap`` matches (``Page.total_is_exact`` False then).
    """
    check_page_bounds(query.limit, query.offset)
    dialect = session.get_bind().dialect.name
    cap = count_cap(query.limit, query.offset, query.count_cap)
    if dialect == "postgresql" and query.text:
        return await _search_postgresql(session, actor, query, cap)

    return await _page_counted_after(session, _search_statement(dialect, actor, query), query, cap)


async def _page_counted_after(
    session: AsyncSession, plan: _SearchPlan, query: ContactQuery, cap: int
) -> Page[Contact]:
    """The page, then (unless it shows the end) the capped count."""
    items = await _page_items(session, plan, query)
    if page_is_last(items, query.limit, query.offset):
        total = query.offset + len(items)
    else:
        total = await _count_matches(session, plan.statement, cap)
    return _page(items, total, query, cap)


async def _page_items(
    session: AsyncSession, plan: _SearchPlan, query: ContactQuery
) -> Sequence[Contact]:
    statement = plan.statement.order_by(plan.newest_first).limit(query.limit).offset(query.offset)
    return (await session.scalars(statement)).all()


async def _count_matches(session: AsyncSession, statement: Select[Contact], cap: int) -> int:
    counted = statement.with_only_columns(Contact.id).order_by(None).limit(cap).subquery()
    return await session.scalar(select(func.count()).select_from(counted)) or 0


def _page(items: Sequence[Contact], total: int, query: ContactQuery, cap: int) -> Page[Contact]:
    return Page(
        items=items,
        total=total,
        limit=query.limit,
        offset=query.offset,
        total_is_exact=total < cap,
    )


# --- PostgreSQL plan choice --------------------------------------------------------------------
#
# The planner cannot know how many contacts a substring or a phone prefix matches (its guesses
# are off by 10-100x either way), and the two good plans differ by orders of magnitude: a rare
# term is best read through its index and sorted (about one row visit per match); a common one
# by walking the contacts newest first until a page is full (about (offset + limit) * contacts /
# matches rows). So we first count, up to ``_FEW_MATCHES_PER_PAGE_ROW * (offset + limit)``:
#
# - phone prefixes: the matching numbers are read from the (e164, contact_id) index alone; when
#   they are few, their contacts are looked up by id;
# - substrings: the capped count (needed for the page total anyway) goes first; when it stays
#   under the bound, the page is read through the trigram index (planner told so: no index or
#   sequential scans); otherwise the planner chooses, and with the column's statistics (target
#   raised by migration 0300) it walks newest first for a common word.

_FEW_MATCHES_PER_PAGE_ROW = 10
# Looking contacts up by id is cheaper than checking a word in them: a higher bound for phones.
_FEW_PHONES_PER_PAGE_ROW = 40
_FROM_THE_INDEX = {"enable_indexscan": "off", "enable_seqscan": "off"}


async def _search_postgresql(
    session: AsyncSession, actor: Actor, query: ContactQuery, cap: int
) -> Page[Contact]:
    plan = _search_statement("postgresql", actor, query)
    page_end = query.offset + query.limit
    if plan.text_kind is _TextKind.PHONE_PREFIX and plan.phone_prefix is not None:
        bound = max(cap, _FEW_PHONES_PER_PAGE_ROW * page_end)
        owners = (
            await session.scalars(
                select(ContactPhone.contact_id)
                .where(_phone_range(plan.phone_prefix))
                .limit(bound + 1)
            )
        ).all()
        if len(owners) <= bound:
            plan = _search_statement("postgresql", actor, query, sorted(set(owners)))
        return await _page_counted_after(session, plan, query, cap)
    if plan.text_kind is not _TextKind.SUBSTRING:
        return await _page_counted_after(session, plan, query, cap)
    bound = max(cap, _FEW_MATCHES_PER_PAGE_ROW * page_end)
    matches = await _count_matches(session, plan.statement, bound)
    if matches <= query.offset:
        items: Sequence[Contact] = []
    elif matches < bound:
        # (The page's phones are loaded inside the block too: bitmap scans suit that IN list.)
        async with _planner_settings(session, _FROM_THE_INDEX):
            items = await _page_items(session, plan, query)
    else:
        items = await _page_items(session, plan, query)
    if page_is_last(items, query.limit, query.offset):
        return _page(items, query.offset + len(items), query, cap)
    return _page(items, min(matches, cap), query, cap)


@asynccontextmanager
async def _planner_settings(
    session: AsyncSession, settings: Mapping[str, str]
) -> AsyncIterator[None]:
    """PostgreSQL planner settings for the statements inside the block: transaction-local
    (``set_config``), the previous values put back after it (an error inside aborts the
    transaction, which drops them anyway)."""
    names = list(settings)
    previous = (await session.execute(select(*(func.current_setting(n) for n in names)))).one()
    await session.execute(select(*(func.set_config(n, settings[n], True) for n in names)))
    yield
    restore = (func.set_config(n, value, True) for n, value in zip(names, previous, strict=True))
    await session.execute(select(*restore))

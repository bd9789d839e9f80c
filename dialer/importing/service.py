"""The contact import use case: a spreadsheet in, contacts created or merged, a report out.

``import_contacts(session, actor, source, options)`` reads the file row by row (see
``reading``), maps its columns (``mapping``), turns each row into contact data (``rows``) and
writes in batches of ``options.batch_size`` rows: two indexed queries per batch find which of
the batch's phones already belong to contacts, new contacts go in together (COPY on PostgreSQL,
multi-row INSERTs on SQLite; see ``bulk``), their phones likewise, merges update the loaded
contacts; the next batch is parsed while one is being written. The search index follows by
itself (SQLite triggers, PostgreSQL trigram index on ``search_text``, which is filled the way
``dialer.contacts`` fills it).

Duplicates are found by phone number, against the database and within the file; the user
chooses to merge them (see ``merging``) or skip them. Every data row gets a line in the report.
The whole import is one audit event with the counts; the CALLER commits.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from itertools import chain, islice
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.actors import Actor
from dialer.audit import append_audit_event
from dialer.contacts import MAXIMUM_TAG_LENGTH, search_text_for, visible_contacts
from dialer.errors import PermissionDenied, ValidationFailed
from dialer.importing.bulk import insert_contacts, insert_phones
from dialer.importing.errors import InvalidMapping, NoHeaderRow
from dialer.importing.mapping import (
    ColumnMapping,
    apply_overrides,
    detect_mapping,
    find_header_row,
)
from dialer.importing.merging import merge_fields, merge_parsed
from dialer.importing.reading import SourceRow, open_table
from dialer.importing.report import ImportReport, RowAction, RowOutcome
from dialer.importing.rows import ParsedContact, ParsedRow, RowContext, parse_row
from dialer.models import Contact, ContactPhone, User, utc_now
from dialer.phones import NormalisedPhone, timezone_for_number
from dialer.statuses import NEW_STATUS, list_statuses

logger = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 1000
IMPORT_AUDIT_ACTION = "contact.import"
_HEADER_SEARCH_ROWS = 20
_ROWS_BETWEEN_TURNS = 50
_TEXT_LIMITS = {"name": 200, "company": 200, "position": 200, "follow_up_note": 2000}
_NOTES_LIMIT = 100_000
_EMAIL_LIMIT = 254
_RAW_PHONE_LIMIT = 100
# SQLite page cache during an import (KiB): the default 2 MB holds little of a million contacts'
# indexes, and every new row lands at a random place in several of them.
_SQLITE_IMPORT_CACHE_KIB = 131072

# Common Russian names of the default statuses (used only when the code exists).
_STATUS_SYNONYMS: Mapping[str, tuple[str, ...]] = {
    "new": ("новый", "новая", "новое"),
    "no_answer": ("недозвон", "не отвечает", "нет ответа", "не дозвонились"),
    "callback": ("перезвонить", "перезвон", "callback", "call back"),
    "interested": ("интересно", "заинтересован", "заинтересована", "интерес"),
    "not_interested": ("не интересно", "отказ", "неинтересно"),
    "do_not_call": ("не звонить", "dnc"),
    "sale": ("продажа", "сделка", "успех"),
    "wrong_number": ("неверный номер", "ошибочный номер", "не тот номер"),
}


class DuplicatePolicy(StrEnum):
    """What to do with a row whose phone is already known."""

    MERGE = "merge"
    SKIP = "skip"


@dataclass(frozen=True)
class ImportOptions:
    """``owner_id`` None: contacts belong to the actor. ``timezone``: the zone of dates in the
    file that carry none. ``mapping_overrides``: {"column title or letter": "field"}."""

    on_duplicate: DuplicatePolicy = DuplicatePolicy.MERGE
    region: str = "RU"
    timezone: str = "UTC"
    owner_id: int | None = None
    shared: bool = False
    mapping_overrides: Mapping[str, str] = field(default_factory=dict)
    source_name: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE


async def import_contacts(
    session: AsyncSession,
    actor: Actor | None,
    source: Path | bytes,
    options: ImportOptions = ImportOptions(),
) -> ImportReport:
    """Import a CSV or XLSX file (path or uploaded bytes). ``actor`` None = the system (CLI).

    Raises ImportFailed subclasses for a file that cannot be imported at all, ValidationFailed
    for bad options, PermissionDenied when the owner is out of the actor's reach. Bad rows never
    raise: they are in the report.
    """
    zone = _zone(options.timezone)
    if phonenumbers.country_code_for_region(options.region.upper()) == 0:
        raise ValidationFailed("region", f"unknown region {options.region!r} (e.g. RU, US, DE)")
    if options.batch_size < 1:
        raise ValidationFailed("batch_size", "must be positive")
    owner_id = await resolve_owner(session, actor, options.owner_id)
    context = RowContext(options.region.upper(), zone, await status_lookup(session))
    with open_table(source) as table:
        rows = table.rows()
        head = list(islice(rows, _HEADER_SEARCH_ROWS))
        while all(row.is_empty for row in head) and (more := list(islice(rows, 100))):
            head.extend(more)  # a sheet that starts far down
        try:
            header_index = find_header_row(head)
        except ValueError:
            raise NoHeaderRow("the file has no rows with data") from None
        header = head[header_index]
        mapping = detect_mapping(header.cells)
        if options.mapping_overrides:
            mapping = apply_overrides(mapping, options.mapping_overrides)
        if not mapping.has_name_or_phone:
            raise InvalidMapping(
                "no column holds a name or a phone; columns: "
                + "; ".join(mapping.describe())
                + " (name them with a mapping such as 'Клиент=name')"
            )
        importer = _Importer(session, actor, owner_id, options)
        data_rows = chain(head[header_index + 1 :], rows)
        async with _larger_sqlite_cache(session), _cached_postgres_plans(session):
            await _import_batches(
                importer, _parsed(data_rows, mapping, context), options.batch_size
            )
        file_format = table.format.describe()
    report = ImportReport(
        file_format=file_format,
        header_row=header.number,
        mapping=tuple(mapping.describe()),
        rows=tuple(importer.outcomes),
    )
    summary: dict[str, Any] = {
        **report.summary(),
        "file": options.source_name,
        "on_duplicate": options.on_duplicate.value,
        "owner_id": owner_id,
        "mapping": list(report.mapping),
    }
    await append_audit_event(
        session,
        actor,
        IMPORT_AUDIT_ACTION,
        f"file:{options.source_name}" if options.source_name else None,
        summary,
    )
    logger.info("imported %s: %s", options.source_name or "upload", report.summary())
    return report


@asynccontextmanager
async def _larger_sqlite_cache(session: AsyncSession) -> AsyncIterator[None]:
    """On SQLite, a bigger page cache for this connection while the block runs (about 15 %
    less CPU and a third less wall time per row at a million contacts); the size is put back
    after it, as the connection goes back to the pool."""
    if session.get_bind().dialect.name != "sqlite":
        yield
        return
    previous = int(await session.scalar(text("PRAGMA cache_size")) or 0)
    await session.execute(text(f"PRAGMA cache_size = -{_SQLITE_IMPORT_CACHE_KIB}"))
    try:
        yield
    finally:
        await session.execute(text(f"PRAGMA cache_size = {previous}"))


@asynccontextmanager
async def _cached_postgres_plans(session: AsyncSession) -> AsyncIterator[None]:
    """On PostgreSQL, the server's default plan caching while the block runs.

    ``dialer.storage`` makes asyncpg connections plan every statement for its parameters
    (``plan_cache_mode = force_custom_plan``, for searches). That applies to the foreign key
    checks PostgreSQL runs for each inserted row as well (owner, status, creator, contact of a
    phone): planned afresh for every row, they took over a third of the server's time of an
    import. With ``auto`` they are planned once. The setting is local to the transaction and
    put back after the block; when the block fails it is left to the rollback (a failed
    PostgreSQL transaction takes no more statements, and the error must not be hidden).
    """
    if session.get_bind().dialect.name != "postgresql":
        yield
        return
    previous = str(await session.scalar(text("SELECT current_setting('plan_cache_mode')")))
    await session.execute(text("SELECT set_config('plan_cache_mode', 'auto', true)"))
    yield
    await session.execute(
        text("SELECT set_config('plan_cache_mode', :previous, true)"), {"previous": previous}
    )


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValidationFailed("timezone", f"unknown time zone {name!r}") from error


async def resolve_owner(
    session: AsyncSession, actor: Actor | None, owner_id: int | None
) -> int | None:
    """The owner of imported contacts: the actor by default; others only within reach
    (supervisors: their team; admins and the system: anyone)."""
    if owner_id is None:
        return actor.user_id if actor is not None else None
    owner = await session.get(User, owner_id)
    if owner is None or owner.disabled:
        raise ValidationFailed("owner", f"no active user {owner_id}")
    if actor is None or actor.is_admin or owner_id == actor.user_id:
        return owner_id
    if actor.is_supervisor and actor.team_id is not None and owner.team_id == actor.team_id:
        return owner_id
    raise PermissionDenied("you may not give contacts to that user")


async def status_lookup(session: AsyncSession) -> dict[str, str]:
    """Lower-cased status code, label and common Russian names -> status code."""
    lookup: dict[str, str] = {}
    for status in await list_statuses(session):
        for synonym in _STATUS_SYNONYMS.get(status.code, ()):
            lookup.setdefault(synonym, status.code)
        lookup[status.label.casefold()] = status.code
        lookup[status.code.casefold()] = status.code
        lookup[status.code.replace("_", " ").casefold()] = status.code
    return lookup


def _parsed(
    rows: Iterable[SourceRow], mapping: ColumnMapping, context: RowContext
) -> Iterator[ParsedRow]:
    """Parsed data rows; empty rows are reported only when data follows them (trailing blank
    rows of a sheet are not data rows)."""
    blank: list[int] = []
    for row in rows:
        if row.is_empty:
            blank.append(row.number)
            continue
        for number in blank:
            yield ParsedRow(number, None, ("empty row",))
        blank.clear()
        yield parse_row(row, mapping, context)


async def _import_batches(importer: _Importer, rows: Iterator[ParsedRow], size: int) -> None:
    """Write batch N while batch N+1 is parsed.

    Parsing (phone numbers above all) keeps this thread busy, while the database works in its
    own thread (aiosqlite) or process (PostgreSQL): parsing gives the event loop a turn every
    few rows so the write's round trips go on meanwhile. A batch is matched against the
    database only after the previous batch is written, so duplicates across batches are seen.
    """
    writing: asyncio.Task[None] | None = None
    try:
        while True:
            batch = await _parse_batch(rows, size)
            if writing is not None:
                await writing
                writing = None
            if not batch:
                return
            plan = await importer.prepare(batch)
            writing = asyncio.create_task(importer.write(plan))
    finally:
        if writing is not None:
            # Only on the way out with another error: let the write finish, keep that error.
            await asyncio.wait([writing])
            if not writing.cancelled() and writing.exception() is not None:
                logger.debug("batch write failed during an aborted import: %s", writing.exception())


async def _parse_batch(rows: Iterator[ParsedRow], size: int) -> list[ParsedRow]:
    batch: list[ParsedRow] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            break
        if len(batch) % _ROWS_BETWEEN_TURNS == 0:
            await asyncio.sleep(0)
    return batch


@dataclass(frozen=True)
class _KnownContact:
    """A contact already in the database that owns a phone; ``row_number`` when this import
    created it."""

    contact_id: int
    row_number: int | None = None


@dataclass
class _NewContact:
    row_number: int
    contact: ParsedContact
    contact_id: int | None = None


@dataclass
class _RowResult:
    """A row's outcome while its batch is written; ``new_contact`` gets its id after insert."""

    row: ParsedRow
    action: RowAction
    contact_id: int | None = None
    new_contact: _NewContact | None = None
    reason: str = ""
    warnings: list[str] = field(default_factory=list)

    def outcome(self) -> RowOutcome:
        contact = self.row.contact
        contact_id = self.contact_id
        if contact_id is None and self.new_contact is not None:
            contact_id = self.new_contact.contact_id
        return RowOutcome(
            row_number=self.row.number,
            action=self.action,
            contact_id=contact_id,
            name=contact.name if contact is not None else "",
            phones=tuple(contact.phone_numbers()) if contact is not None else (),
            reason=self.reason,
            warnings=tuple(self.warnings),
        )


@dataclass
class _BatchPlan:
    now: datetime
    existing: Mapping[int, Contact | None]
    new_contacts: list[_NewContact] = field(default_factory=list)
    results: list[_RowResult] = field(default_factory=list)


class _Importer:
    """Writes batches of parsed rows; remembers every phone seen so far in ``known``."""

    def __init__(
        self,
        session: AsyncSession,
        actor: Actor | None,
        owner_id: int | None,
        options: ImportOptions,
    ) -> None:
        self.session = session
        self.actor = actor
        self.owner_id = owner_id
        self.options = options
        self.known: dict[str, _KnownContact] = {}
        self.outcomes: list[RowOutcome] = []

    async def prepare(self, batch: Sequence[ParsedRow]) -> _BatchPlan:
        """Match a batch against the database and the file so far; merges are applied to the
        loaded contacts (not flushed yet), new contacts are collected for ``write``."""
        now = utc_now()
        await self._load_known_phones(batch)
        existing = await self._load_matched_contacts(batch)
        pending: dict[str, _NewContact] = {}
        plan = _BatchPlan(now=now, existing=existing)
        for row in batch:
            plan.results.append(self._place_row(row, pending, plan.new_contacts, existing, now))
        return plan

    async def write(self, plan: _BatchPlan) -> None:
        await self._insert(plan.new_contacts, plan.now)
        await self.session.flush()
        for contact in plan.existing.values():
            if contact is not None:
                self.session.expunge(contact)
        self.outcomes.extend(result.outcome() for result in plan.results)

    # --- finding duplicates --------------------------------------------------------------

    async def _load_known_phones(self, batch: Sequence[ParsedRow]) -> None:
        wanted = {
            phone.e164
            for row in batch
            if row.contact is not None
            for phone in row.contact.phones
            if phone.e164 not in self.known
        }
        if not wanted:
            return
        # Two index lookups on purpose: joined with contacts in one query, SQLite's planner
        # walks the whole contacts table (ix_contacts_deleted_at) once the IN list is long.
        phone_rows = (
            await self.session.execute(
                select(ContactPhone.e164, ContactPhone.contact_id).where(
                    ContactPhone.e164.in_(sorted(wanted))
                )
            )
        ).all()
        if not phone_rows:
            return
        candidate_ids = sorted({row.contact_id for row in phone_rows})
        live_ids = set(
            (
                await self.session.scalars(
                    select(Contact.id).where(
                        Contact.id.in_(candidate_ids), Contact.deleted_at.is_(None)
                    )
                )
            ).all()
        )
        for e164, contact_id in sorted(phone_rows, key=lambda row: row.contact_id):
            if contact_id in live_ids:
                self.known.setdefault(e164, _KnownContact(contact_id))

    async def _load_matched_contacts(self, batch: Sequence[ParsedRow]) -> dict[int, Contact | None]:
        """Contacts of the database a row of the batch matches: visible ones loaded, the
        others None (an operator cannot merge into a colleague's contact)."""
        ids = {
            self.known[phone.e164].contact_id
            for row in batch
            if row.contact is not None
            for phone in row.contact.phones
            if phone.e164 in self.known
        }
        if not ids:
            return {}
        found: dict[int, Contact | None] = dict.fromkeys(ids)
        statement = select(Contact).where(Contact.id.in_(sorted(ids)))
        if self.actor is not None:
            statement = statement.where(visible_contacts(self.actor))
        for contact in (await self.session.scalars(statement)).all():
            found[contact.id] = contact
        return found

    def _place_row(
        self,
        row: ParsedRow,
        pending: dict[str, _NewContact],
        new_contacts: list[_NewContact],
        existing: Mapping[int, Contact | None],
        now: datetime,
    ) -> _RowResult:
        parsed = row.contact
        if parsed is None:
            return _RowResult(
                row, RowAction.SKIPPED, reason=row.problems[0], warnings=list(row.problems[1:])
            )
        warnings = list(row.problems)
        warnings.extend(_fit_limits(parsed))
        in_batch = [pending[phone.e164] for phone in parsed.phones if phone.e164 in pending]
        in_database = [
            (phone.e164, self.known[phone.e164])
            for phone in parsed.phones
            if phone.e164 in self.known
        ]
        if in_batch:
            return self._duplicate_of_new(row, parsed, in_batch[0], pending, warnings)
        if in_database:
            e164, known = in_database[0]
            return self._duplicate_of_existing(row, parsed, e164, known, existing, warnings, now)
        new_contact = _NewContact(row.number, parsed)
        new_contacts.append(new_contact)
        for phone in parsed.phones:
            pending[phone.e164] = new_contact
        return _RowResult(row, RowAction.CREATED, new_contact=new_contact, warnings=warnings)

    def _duplicate_of_new(
        self,
        row: ParsedRow,
        parsed: ParsedContact,
        first: _NewContact,
        pending: dict[str, _NewContact],
        warnings: list[str],
    ) -> _RowResult:
        shared_phone = _shared_phone(parsed, first.contact)
        if self.options.on_duplicate is DuplicatePolicy.SKIP:
            reason = f"duplicate of row {first.row_number} (phone {shared_phone})"
            return _RowResult(row, RowAction.SKIPPED, reason=reason, warnings=warnings)
        taken = [
            phone
            for phone in parsed.phones
            if phone.e164 in self.known
            or (phone.e164 in pending and pending[phone.e164] is not first)
        ]
        warnings.extend(_taken_phone_warnings(taken, self.known, pending))
        addable = replace(parsed, phones=[phone for phone in parsed.phones if phone not in taken])
        changed = merge_parsed(first.contact, addable)
        for phone in addable.phones:
            pending.setdefault(phone.e164, first)
        reason = f"merged into row {first.row_number} (phone {shared_phone})" + _changes_text(
            changed
        )
        return _RowResult(
            row, RowAction.MERGED, new_contact=first, reason=reason, warnings=warnings
        )

    def _duplicate_of_existing(
        self,
        row: ParsedRow,
        parsed: ParsedContact,
        e164: str,
        known: _KnownContact,
        existing: Mapping[int, Contact | None],
        warnings: list[str],
        now: datetime,
    ) -> _RowResult:
        contact_id = known.contact_id
        described = (
            f"row {known.row_number} (contact {contact_id}, phone {e164})"
            if known.row_number is not None
            else f"contact {contact_id} (phone {e164})"
        )
        contact = existing.get(contact_id)
        if contact is None:
            reason = f"phone {e164} belongs to a contact of another user"
            return _RowResult(row, RowAction.SKIPPED, reason=reason, warnings=warnings)
        if self.options.on_duplicate is DuplicatePolicy.SKIP:
            return _RowResult(
                row,
                RowAction.SKIPPED,
                contact_id=contact_id,
                reason=f"duplicate of {described}",
                warnings=warnings,
            )
        changed = merge_fields(contact, parsed)
        present = {phone.e164 for phone in contact.phones}
        taken = [
            phone
            for phone in parsed.phones
            if phone.e164 not in present
            and phone.e164 in self.known
            and self.known[phone.e164].contact_id != contact_id
        ]
        warnings.extend(_taken_phone_warnings(taken, self.known, {}))
        added = [
            phone for phone in parsed.phones if phone.e164 not in present and phone not in taken
        ]
        for phone in added:
            contact.phones.append(
                ContactPhone(
                    e164=phone.e164,
                    raw=phone.raw[:_RAW_PHONE_LIMIT],
                    kind=phone.kind.value,
                    is_primary=not contact.phones,
                    position=len(contact.phones),
                )
            )
            self.known[phone.e164] = _KnownContact(contact_id, known.row_number)
        if added:
            changed.append("phones")
            if contact.timezone is None:
                contact.timezone = timezone_for_number(contact.phones[0].e164)
        if changed:
            contact.search_text = search_text_for(contact.name, contact.company, contact.email)
            contact.updated_at = now
            contact.updated_by_id = self.actor.user_id if self.actor is not None else None
        return _RowResult(
            row,
            RowAction.MERGED,
            contact_id=contact_id,
            reason=f"merged into {described}" + _changes_text(changed),
            warnings=warnings,
        )

    # --- writing -------------------------------------------------------------------------

    async def _insert(self, new_contacts: Sequence[_NewContact], now: datetime) -> None:
        if not new_contacts:
            return
        actor_id = self.actor.user_id if self.actor is not None else None
        values = [self._contact_values(item.contact, now, actor_id) for item in new_contacts]
        ids = await insert_contacts(self.session, values)
        phone_values: list[dict[str, Any]] = []
        for item, contact_id in zip(new_contacts, ids, strict=True):
            item.contact_id = contact_id
            for position, phone in enumerate(item.contact.phones):
                phone_values.append(_phone_values(contact_id, phone, position))
                self.known[phone.e164] = _KnownContact(contact_id, item.row_number)
        await insert_phones(self.session, phone_values)

    def _contact_values(
        self, contact: ParsedContact, now: datetime, actor_id: int | None
    ) -> dict[str, Any]:
        timezone = contact.timezone
        if timezone is None and contact.phones:
            timezone = contact.phones[0].timezone
        return {
            "name": contact.name,
            "company": contact.company,
            "position": contact.position,
            "email": contact.email,
            "timezone": timezone,
            "owner_id": self.owner_id,
            "status": contact.status or NEW_STATUS,
            "follow_up_at": contact.follow_up_at,
            "follow_up_note": contact.follow_up_note,
            "tags": contact.tags,
            "notes": contact.notes,
            "custom_fields": contact.custom_fields,
            "shared": self.options.shared,
            "search_text": search_text_for(contact.name, contact.company, contact.email),
            "created_at": now,
            "created_by_id": actor_id,
            "updated_at": now,
            "updated_by_id": actor_id,
        }


def _phone_values(contact_id: int, phone: NormalisedPhone, position: int) -> dict[str, Any]:
    return {
        "contact_id": contact_id,
        "e164": phone.e164,
        "raw": phone.raw[:_RAW_PHONE_LIMIT],
        "kind": phone.kind.value,
        "is_primary": position == 0,
        "position": position,
    }


def _fit_limits(contact: ParsedContact) -> list[str]:
    """Cut values to the column sizes ``dialer.contacts`` enforces; say what was cut."""
    warnings: list[str] = []
    for name, limit in _TEXT_LIMITS.items():
        value = getattr(contact, name)
        if value and len(value) > limit:
            setattr(contact, name, value[:limit])
            warnings.append(f"{name} cut to {limit} characters")
    if len(contact.notes) > _NOTES_LIMIT:
        contact.notes = contact.notes[:_NOTES_LIMIT]
        warnings.append(f"notes cut to {_NOTES_LIMIT} characters")
    if contact.email is not None and len(contact.email) > _EMAIL_LIMIT:
        contact.custom_fields.setdefault("E-mail", contact.email)
        contact.email = None
        warnings.append("e-mail address too long (kept in custom field 'E-mail')")
    long_tags = [tag for tag in contact.tags if len(tag) > MAXIMUM_TAG_LENGTH]
    if long_tags:
        contact.tags = [tag[:MAXIMUM_TAG_LENGTH] for tag in contact.tags]
        warnings.append(f"{len(long_tags)} tag(s) cut to {MAXIMUM_TAG_LENGTH} characters")
    return warnings


def _shared_phone(parsed: ParsedContact, other: ParsedContact) -> str:
    theirs = set(other.phone_numbers())
    return next(phone.e164 for phone in parsed.phones if phone.e164 in theirs)


def _taken_phone_warnings(
    taken: Sequence[NormalisedPhone],
    known: Mapping[str, _KnownContact],
    pending: Mapping[str, _NewContact],
) -> list[str]:
    warnings: list[str] = []
    for phone in taken:
        if phone.e164 in pending:
            owner = f"row {pending[phone.e164].row_number}"
        else:
            owner = f"contact {known[phone.e164].contact_id}"
        warnings.append(f"phone {phone.e164} not added: it belongs to {owner}")
    return warnings


def _changes_text(changed: Sequence[str]) -> str:
    return f": added {', '.join(changed)}" if changed else ": nothing new"

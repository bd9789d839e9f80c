"""Writing an import batch's new rows: contacts (their ids back, in order) and their phones.

PostgreSQL: the rows go in with COPY (asyncpg's binary ``copy_records_to_table`` on the
session's own connection, so inside the caller's transaction), the contact ids taken from the
table's sequence beforehand in one query. A multi-row INSERT of a thousand contacts makes the
server parse and plan a statement with 18 000 parameters; COPY takes the rows as they are. The
values pass through the columns' SQLAlchemy bind processors first, so what is stored (the JSON
text of tags and custom fields, UTC timestamps) is what an INSERT through SQLAlchemy stores.

SQLite: multi-row INSERTs written here and sent as they are (``exec_driver_sql``), the values
through the same bind processors; SQLAlchemy's own "insertmanyvalues" builds the same statements
but spends more time per value than SQLite spends storing it. Other drivers: INSERT ...
RETURNING through SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from sqlalchemy import Table, func, insert, select
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from dialer.models import Contact

_CONTACTS = Contact.metadata.tables["contacts"]
_CONTACT_PHONES = Contact.metadata.tables["contact_phones"]
# As SQLAlchemy's "insertmanyvalues" on SQLite: at most 1000 rows and 32 766 values a statement.
_SQLITE_ROWS_PER_STATEMENT = 1000
_SQLITE_MAXIMUM_PARAMETERS = 32766
_NEXT_IDS = "SELECT nextval(pg_get_serial_sequence($1, 'id')) FROM generate_series(1, $2)"


class _CopyConnection(Protocol):
    """The part of an ``asyncpg.Connection`` used here."""

    async def fetch(self, query: str, *arguments: Any) -> list[Any]: ...

    async def copy_records_to_table(
        self, table_name: str, *, records: Any, columns: Sequence[str]
    ) -> str: ...


def uses_copy(session: AsyncSession) -> bool:
    """Whether new rows go in with COPY on this session's database (PostgreSQL via asyncpg)."""
    dialect = session.get_bind().dialect
    return dialect.name == "postgresql" and dialect.driver == "asyncpg"


async def insert_contacts(session: AsyncSession, values: Sequence[dict[str, Any]]) -> list[int]:
    """Insert contact rows (dicts of column values, all with the same keys); their new ids, in
    the order of ``values``."""
    if not values:
        return []
    if uses_copy(session):
        connection = await _copy_connection(session)
        rows = await connection.fetch(_NEXT_IDS, _CONTACTS.name, len(values))
        ids = sorted(int(row[0]) for row in rows)
        with_ids = [{**row, "id": contact_id} for row, contact_id in zip(values, ids, strict=True)]
        await _copy(session, connection, _CONTACTS, with_ids)
        return ids
    if session.get_bind().dialect.name == "sqlite":
        return await _insert_sqlite_contacts(session, values)
    statement = insert(_CONTACTS).returning(_CONTACTS.c.id, sort_by_parameter_order=True)
    return list((await session.scalars(statement, values)).all())


async def insert_phones(session: AsyncSession, values: Sequence[dict[str, Any]]) -> None:
    """Insert contact phone rows (dicts of column values, all with the same keys)."""
    if not values:
        return
    if uses_copy(session):
        await _copy(session, await _copy_connection(session), _CONTACT_PHONES, values)
        return
    if session.get_bind().dialect.name == "sqlite":
        await _insert_sqlite_rows(session, _CONTACT_PHONES, values)
        return
    await session.execute(insert(_CONTACT_PHONES), values)


async def _copy_connection(session: AsyncSession) -> _CopyConnection:
    """The asyncpg connection of the session's transaction, the transaction begun on it
    (SQLAlchemy begins it with the first statement it sends; COPY before that would be a
    transaction of its own)."""
    connection = await session.connection()
    await connection.exec_driver_sql("SELECT 1")
    raw = await connection.get_raw_connection()
    driver = raw.driver_connection
    if driver is None:
        raise RuntimeError("the session's database connection is closed")
    copy_connection: _CopyConnection = driver
    return copy_connection


async def _copy(
    session: AsyncSession,
    connection: _CopyConnection,
    table: Table,
    values: Sequence[dict[str, Any]],
) -> None:
    columns = list(values[0])
    records = _records(session, table, columns, values)
    await connection.copy_records_to_table(table.name, records=records, columns=columns)


def _records(
    session: AsyncSession, table: Table, columns: Sequence[str], values: Sequence[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    """Each row's values in the order of ``columns``, as SQLAlchemy would hand them to the
    driver."""
    processors = _bind_processors(table, columns, session.get_bind().dialect)
    return [
        tuple(
            value if processor is None else processor(value)
            for value, processor in zip((row[name] for name in columns), processors, strict=True)
        )
        for row in values
    ]


async def _insert_sqlite_rows(
    session: AsyncSession, table: Table, values: Sequence[dict[str, Any]]
) -> None:
    """Multi-row INSERTs of ``values`` (dicts with the same keys) into ``table`` on SQLite."""
    columns = list(values[0])
    records = _records(session, table, columns, values)
    per_statement = max(
        1, min(_SQLITE_ROWS_PER_STATEMENT, _SQLITE_MAXIMUM_PARAMETERS // len(columns))
    )
    quote = session.get_bind().dialect.identifier_preparer.quote
    # Table and column names from the metadata, quoted; the values are parameters.
    head = f"INSERT INTO {quote(table.name)} ({', '.join(map(quote, columns))}) VALUES "  # noqa: S608
    row_placeholders = "(" + ", ".join("?" * len(columns)) + ")"
    connection = await session.connection()
    for start in range(0, len(records), per_statement):
        chunk = records[start : start + per_statement]
        statement = head + ", ".join([row_placeholders] * len(chunk))
        parameters = tuple(value for record in chunk for value in record)
        await connection.exec_driver_sql(statement, parameters)


def _bind_processors(
    table: Table, columns: Sequence[str], dialect: Dialect
) -> list[Callable[[Any], Any] | None]:
    """What SQLAlchemy does to each column's value before the driver sees it."""
    return [table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns]


async def _insert_sqlite_contacts(
    session: AsyncSession, values: Sequence[dict[str, Any]]
) -> list[int]:
    """Insert contact rows on SQLite; their ids, in order.

    Multi-row INSERTs matter beyond the round trips: the full-text trigger then writes each
    statement's rows to the FTS index in one go, where an INSERT per row makes FTS5 flush a
    segment per row (three times the work). The ids are read back: inside our write
    transaction nobody else inserts, and a table without AUTOINCREMENT gives each new row
    max(rowid) + 1 in the order of the VALUES, so the batch's ids are the consecutive run
    ending at max(id).
    """
    await _insert_sqlite_rows(session, _CONTACTS, values)
    last_id = await session.scalar(select(func.max(Contact.id)))
    if last_id is None:
        raise RuntimeError("contacts were inserted but the table is empty")
    first_id = last_id - len(values) + 1
    in_range = await session.scalar(
        select(func.count()).where(Contact.id >= first_id, Contact.id <= last_id)
    )
    if in_range != len(values):
        raise RuntimeError("contact ids of an import batch are not consecutive")
    return list(range(first_id, last_id + 1))

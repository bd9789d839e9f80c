"""``/api/contacts``: search, create, read, change, delete (soft), restore and purge contacts.

Which contacts a user sees is decided by ``dialer.contacts`` (operators: own and shared;
supervisors: their team's and shared; admins: all). Phone numbers are checked here too, so a bad
number is reported as ``phones[i].number`` rather than just "phone".
"""

from __future__ import annotations

from datetime import datetime

from dialer.contacts import (
    ContactInput,
    ContactQuery,
    PhoneInput,
    create_contact,
    get_contact,
    purge_contact,
    restore_contact,
    search_contacts,
    soft_delete_contact,
    update_contact,
)
from dialer.errors import ValidationFailed
from dialer.models import PhoneKind
from dialer.phones import normalise_phone
from web.api.representations import contact_json, page_json
from web.errors import RequestInvalid
from web.permissions import ADMIN_ONLY, SIGNED_IN
from web.routing import Call, Endpoint
from web.validation import (
    INTEGER_COLUMN_MAXIMUM,
    Boolean,
    DateTime,
    Field,
    Integer,
    ListOf,
    MapOf,
    ObjectSchema,
    QuerySchema,
    Scalar,
    Text,
    Values,
    pagination_parameters,
    query_boolean,
    query_integer,
    query_text,
)

DEFAULT_PAGE_SIZE = 50

PHONE = ObjectSchema(
    {
        "number": Text(min_length=1, max_length=100, description="as typed; any common format"),
        "kind": Text(choices=tuple(kind.value for kind in PhoneKind), nullable=True),
        "primary": Boolean(),
    },
    required=frozenset({"number"}),
)


def _contact_fields(*, for_update: bool) -> dict[str, Field]:
    return {
        "name": Text(max_length=200),
        "company": Text(max_length=200),
        "position": Text(max_length=200),
        "phones": ListOf(PHONE, max_items=20),
        "email": Text(max_length=254, nullable=True),
        "timezone": Text(max_length=64, nullable=True, description="IANA zone, e.g. Europe/Moscow"),
        "owner_id": Integer(minimum=1, maximum=INTEGER_COLUMN_MAXIMUM, nullable=not for_update),
        "status": Text(min_length=1, max_length=40),
        "follow_up_at": DateTime(nullable=True),
        "follow_up_note": Text(max_length=2000, nullable=True),
        "tags": ListOf(Text(min_length=1, max_length=50), max_items=50),
        "notes": Text(max_length=100_000),
        "custom_fields": MapOf(Scalar()),
        "shared": Boolean(),
    }


CREATE_BODY = ObjectSchema(_contact_fields(for_update=False))
CHANGE_BODY = ObjectSchema(_contact_fields(for_update=True), min_fields=1)

LIST_QUERY = QuerySchema(
    {
        "q": query_text("name/company/e-mail substring, or a phone prefix in any common format"),
        "status": query_text("status code", max_length=40),
        "owner_id": query_integer("owner's user id", minimum=1, maximum=INTEGER_COLUMN_MAXIMUM),
        "follow_up_due": query_boolean("only contacts whose follow-up time has come"),
        "tag": query_text("has this tag", max_length=50),
        "shared": query_boolean("only shared (true) or only personal (false) contacts"),
        "deleted": query_boolean("admins: list deleted contacts instead"),
        **pagination_parameters(DEFAULT_PAGE_SIZE),
    }
)


def _phone_inputs(call: Call, body: Values) -> list[PhoneInput]:
    """The phones of a body, each checked so an error names ``phones[i].number``."""
    phones: list[PhoneInput] = []
    region = call.settings.core.default_region
    for index, phone in enumerate(body.objects("phones")):
        number = phone.text("number")
        try:
            normalise_phone(number, region)
        except ValidationFailed as error:
            raise RequestInvalid(f"phones[{index}].number", error.problem) from None
        phones.append(
            PhoneInput(
                raw=number, kind=phone.optional_text("kind"), primary=phone.boolean("primary")
            )
        )
    return phones


async def contacts(call: Call) -> object:
    query = call.query
    due_before: datetime | None = call.now if query.boolean("follow_up_due") else None
    page = await search_contacts(
        call.database,
        call.require_actor(),
        ContactQuery(
            text=query.optional_text("q") or None,
            status=query.optional_text("status"),
            owner_id=query.optional_integer("owner_id"),
            follow_up_due_before=due_before,
            tag=query.optional_text("tag"),
            shared=query.optional_boolean("shared"),
            only_deleted=query.boolean("deleted"),
            limit=query.optional_integer("limit") or DEFAULT_PAGE_SIZE,
            offset=query.optional_integer("offset") or 0,
            region=call.settings.core.default_region,
        ),
    )
    return page_json(page, contact_json)


async def new_contact(call: Call) -> object:
    body = call.body
    contact = await create_contact(
        call.database,
        call.require_actor(),
        ContactInput(
            name=body.optional_text("name") or "",
            company=body.optional_text("company") or "",
            position=body.optional_text("position") or "",
            phones=_phone_inputs(call, body),
            email=body.optional_text("email") or None,
            timezone=body.optional_text("timezone") or None,
            owner_id=body.optional_integer("owner_id"),
            status=body.optional_text("status"),
            follow_up_at=body.optional_datetime("follow_up_at"),
            follow_up_note=body.optional_text("follow_up_note"),
            tags=body.text_list("tags"),
            notes=body.optional_text("notes") or "",
            custom_fields=body.mapping("custom_fields"),
            shared=body.boolean("shared"),
        ),
        default_region=call.settings.core.default_region,
        now=call.now,
    )
    return contact_json(contact)


async def contact(call: Call) -> object:
    return contact_json(await get_contact(call.database, call.require_actor(), call.path_id()))


async def change_contact(call: Call) -> object:
    changes: dict[str, object] = dict(call.body.data)
    if "phones" in changes:
        changes["phones"] = _phone_inputs(call, call.body)
    changed = await update_contact(
        call.database,
        call.require_actor(),
        call.path_id(),
        changes,
        default_region=call.settings.core.default_region,
        now=call.now,
    )
    return contact_json(changed)


async def delete_contact(call: Call) -> object:
    deleted = await soft_delete_contact(
        call.database, call.require_actor(), call.path_id(), now=call.now
    )
    return {"id": deleted.id, "deleted": True}


async def restore(call: Call) -> object:
    restored = await restore_contact(
        call.database, call.require_actor(), call.path_id(), now=call.now
    )
    return contact_json(restored)


async def purge(call: Call) -> object:
    contact_id = call.path_id()
    await purge_contact(call.database, call.require_actor(), contact_id, now=call.now)
    return {"id": contact_id, "purged": True}


ENDPOINTS = (
    Endpoint(
        "GET",
        "/api/contacts",
        contacts,
        SIGNED_IN,
        "Search contacts visible to you, newest first, one page with the total",
        "contacts",
        query=LIST_QUERY,
        read_only=True,
    ),
    Endpoint(
        "POST",
        "/api/contacts",
        new_contact,
        SIGNED_IN,
        "Create a contact (owner defaults to you)",
        "contacts",
        body=CREATE_BODY,
        status=201,
    ),
    Endpoint(
        "GET",
        "/api/contacts/{id:int}",
        contact,
        SIGNED_IN,
        "One contact",
        "contacts",
        read_only=True,
    ),
    Endpoint(
        "PATCH",
        "/api/contacts/{id:int}",
        change_contact,
        SIGNED_IN,
        "Change some fields of a contact (phones replaces the whole list)",
        "contacts",
        body=CHANGE_BODY,
    ),
    Endpoint(
        "DELETE",
        "/api/contacts/{id:int}",
        delete_contact,
        SIGNED_IN,
        "Delete a contact (soft: admins can restore or purge it)",
        "contacts",
    ),
    Endpoint(
        "POST",
        "/api/contacts/{id:int}/restore",
        restore,
        ADMIN_ONLY,
        "Undo the deletion of a contact",
        "contacts",
    ),
    Endpoint(
        "POST",
        "/api/contacts/{id:int}/purge",
        purge,
        ADMIN_ONLY,
        "Remove a contact for good (erasure requests)",
        "contacts",
    ),
)

"""Declarative schemas for request bodies and query strings.

A schema checks a decoded JSON value and returns plain Python values (``datetime`` for
date-times), or raises ``RequestInvalid`` naming the field (``phones[0].number``) and the problem:
missing, unknown, wrong type, out of range, bad format. The same schema renders itself as JSON
Schema (2020-12, as OpenAPI 3.1 uses) for ``/api/openapi.json``.

Query strings use ``QuerySchema`` whose fields convert from text.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

from web.errors import RequestInvalid

JsonSchema = dict[str, object]

# Largest values of the database's integer columns: ids of users and teams are INTEGER, ids of
# contacts and calls BIGINT. A larger number must be refused here, not reach the database.
INTEGER_COLUMN_MAXIMUM = 2**31 - 1
BIG_INTEGER_COLUMN_MAXIMUM = 2**63 - 1


class Field(Protocol):
    """One value in a body: checks and converts it, and describes itself as JSON Schema."""

    @property
    def nullable(self) -> bool: ...

    def parse(self, value: object, path: str) -> object: ...

    def json_schema(self) -> JsonSchema: ...


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _with_null(schema: JsonSchema, nullable: bool) -> JsonSchema:
    if not nullable:
        return schema
    kind = schema.get("type")
    if isinstance(kind, str):
        return {**schema, "type": [kind, "null"]}
    return {"anyOf": [schema, {"type": "null"}]}


def _check_null(value: object, path: str, nullable: bool) -> bool:
    """True when ``value`` is an allowed null; raises when null is not allowed."""
    if value is None:
        if nullable:
            return True
        raise RequestInvalid(path, "must not be null")
    return False


@dataclass(frozen=True)
class Text:
    """A string, stripped of surrounding whitespace unless ``strip`` is false (passwords)."""

    min_length: int = 0
    max_length: int = 1000
    nullable: bool = False
    choices: tuple[str, ...] = ()
    pattern: str | None = None
    description: str | None = None
    strip: bool = True

    def parse(self, value: object, path: str) -> object:
        if _check_null(value, path, self.nullable):
            return None
        if not isinstance(value, str):
            raise RequestInvalid(path, "must be a string")
        text = value.strip() if self.strip else value
        if "\x00" in text:
            raise RequestInvalid(path, "must not contain NUL characters")
        if len(text) < self.min_length:
            if self.min_length == 1:
                raise RequestInvalid(path, "must not be empty")
            raise RequestInvalid(path, f"must be at least {self.min_length} characters")
        if len(text) > self.max_length:
            raise RequestInvalid(path, f"must be at most {self.max_length} characters")
        if self.choices and text not in self.choices:
            raise RequestInvalid(path, "must be one of: " + ", ".join(self.choices))
        if self.pattern is not None and re.fullmatch(self.pattern, text) is None:
            raise RequestInvalid(path, "has an invalid format")
        return text

    def json_schema(self) -> JsonSchema:
        schema: JsonSchema = {"type": "string", "maxLength": self.max_length}
        if self.min_length:
            schema["minLength"] = self.min_length
        if self.choices:
            schema["enum"] = list(self.choices)
        if self.pattern is not None:
            schema["pattern"] = self.pattern
        if self.description:
            schema["description"] = self.description
        return _with_null(schema, self.nullable)


@dataclass(frozen=True)
class Integer:
    minimum: int = -BIG_INTEGER_COLUMN_MAXIMUM
    maximum: int = BIG_INTEGER_COLUMN_MAXIMUM
    nullable: bool = False

    def parse(self, value: object, path: str) -> object:
        if _check_null(value, path, self.nullable):
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestInvalid(path, "must be an integer")
        if value < self.minimum:
            raise RequestInvalid(path, f"must be at least {self.minimum}")
        if value > self.maximum:
            raise RequestInvalid(path, f"must be at most {self.maximum}")
        return value

    def json_schema(self) -> JsonSchema:
        schema: JsonSchema = {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}
        return _with_null(schema, self.nullable)


@dataclass(frozen=True)
class Boolean:
    nullable: bool = False

    def parse(self, value: object, path: str) -> object:
        if _check_null(value, path, self.nullable):
            return None
        if not isinstance(value, bool):
            raise RequestInvalid(path, "must be true or false")
        return value

    def json_schema(self) -> JsonSchema:
        return _with_null({"type": "boolean"}, self.nullable)


def parse_datetime(text: str, path: str) -> datetime:
    """An ISO 8601 date-time with a UTC offset (``Z`` or ``+03:00``), returned in UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise RequestInvalid(
            path, "must be an ISO 8601 date-time such as 2026-01-31T09:30:00+03:00"
        ) from None
    if moment.tzinfo is None:
        raise RequestInvalid(path, "must include a UTC offset, e.g. Z or +03:00")
    return moment.astimezone(UTC)


@dataclass(frozen=True)
class DateTime:
    """An ISO 8601 date-time with an offset; parsed to an aware ``datetime`` in UTC."""

    nullable: bool = False

    def parse(self, value: object, path: str) -> object:
        if _check_null(value, path, self.nullable):
            return None
        if not isinstance(value, str):
            raise RequestInvalid(path, "must be a date-time string")
        return parse_datetime(value, path)

    def json_schema(self) -> JsonSchema:
        return _with_null({"type": "string", "format": "date-time"}, self.nullable)


@dataclass(frozen=True)
class Scalar:
    """A string, number or boolean (custom field values); numbers must be finite."""

    max_length: int = 2000
    nullable: bool = True

    def parse(self, value: object, path: str) -> object:
        if _check_null(value, path, self.nullable):
            return None
        if isinstance(value, str):
            if len(value) > self.max_length:
                raise RequestInvalid(path, f"must be at most {self.max_length} characters")
            if "\x00" in value:
                raise RequestInvalid(path, "must not contain NUL characters")
            return value
        if isinstance(value, bool | int):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                raise RequestInvalid(path, "must be a finite number")
            return value
        raise RequestInvalid(path, "must be a string, number or boolean")

    def json_schema(self) -> JsonSchema:
        kinds: list[str] = ["string", "number", "boolean"]
        if self.nullable:
            kinds.append("null")
        return {"type": kinds}


@dataclass(frozen=True)
class ListOf:
    item: Field
    max_items: int = 100
    nullable: bool = False

    def parse(self, value: object, path: str) -> object:
        if _check_null(value, path, self.nullable):
            return None
        if not isinstance(value, list):
            raise RequestInvalid(path, "must be a list")
        if len(value) > self.max_items:
            raise RequestInvalid(path, f"must have at most {self.max_items} items")
        return [self.item.parse(entry, f"{path}[{index}]") for index, entry in enumerate(value)]

    def json_schema(self) -> JsonSchema:
        schema: JsonSchema = {
            "type": "array",
            "items": self.item.json_schema(),
            "maxItems": self.max_items,
        }
        return _with_null(schema, self.nullable)


@dataclass(frozen=True)
class MapOf:
    """A JSON object with free-form keys (e.g. custom fields) whose values share one schema."""

    value: Field
    max_entries: int = 100
    max_key_length: int = 100
    nullable: bool = False

    def parse(self, value: object, path: str) -> object:
        if _check_null(value, path, self.nullable):
            return None
        if not isinstance(value, dict):
            raise RequestInvalid(path, "must be an object")
        if len(value) > self.max_entries:
            raise RequestInvalid(path, f"must have at most {self.max_entries} entries")
        parsed: dict[str, object] = {}
        for key, entry in value.items():
            if not key or len(key) > self.max_key_length or "\x00" in key:
                raise RequestInvalid(
                    _join(path, key[:40].replace("\x00", "")),
                    f"keys must be 1 to {self.max_key_length} characters, without NUL",
                )
            parsed[key] = self.value.parse(entry, _join(path, key))
        return parsed

    def json_schema(self) -> JsonSchema:
        schema: JsonSchema = {
            "type": "object",
            "additionalProperties": self.value.json_schema(),
            "maxProperties": self.max_entries,
        }
        return _with_null(schema, self.nullable)


@dataclass(frozen=True)
class Checked:
    """A field with an extra check after parsing (e.g. a phone number), keeping its schema.

    ``check(value)`` returns the value to keep or raises ``ValueError`` whose text is the problem.
    """

    inner: Field
    check: Callable[[object], object]
    description: str = ""

    @property
    def nullable(self) -> bool:
        return self.inner.nullable

    def parse(self, value: object, path: str) -> object:
        parsed = self.inner.parse(value, path)
        if parsed is None:
            return None
        try:
            return self.check(parsed)
        except ValueError as problem:
            raise RequestInvalid(path, str(problem)) from None

    def json_schema(self) -> JsonSchema:
        schema = self.inner.json_schema()
        if self.description:
            schema = {**schema, "description": self.description}
        return schema


@dataclass(frozen=True)
class Values:
    """Checked values of an object body: typed accessors keep handlers free of casts.

    Only fields present in the request are present here, so PATCH handlers can tell "absent"
    from "set to null" with ``in``.
    """

    data: Mapping[str, object]

    def __contains__(self, name: object) -> bool:
        return name in self.data

    def raw(self, name: str) -> object:
        return self.data.get(name)

    def text(self, name: str) -> str:
        value = self.data[name]
        assert isinstance(value, str)
        return value

    def optional_text(self, name: str, default: str | None = None) -> str | None:
        value = self.data.get(name, default)
        assert value is None or isinstance(value, str)
        return value

    def integer(self, name: str) -> int:
        value = self.data[name]
        assert isinstance(value, int)
        return value

    def optional_integer(self, name: str, default: int | None = None) -> int | None:
        value = self.data.get(name, default)
        assert value is None or isinstance(value, int)
        return value

    def boolean(self, name: str, default: bool = False) -> bool:
        value = self.data.get(name, default)
        assert isinstance(value, bool)
        return value

    def optional_boolean(self, name: str) -> bool | None:
        value = self.data.get(name)
        assert value is None or isinstance(value, bool)
        return value

    def optional_datetime(self, name: str) -> datetime | None:
        value = self.data.get(name)
        assert value is None or isinstance(value, datetime)
        return value

    def text_list(self, name: str) -> list[str]:
        value = self.data.get(name) or []
        assert isinstance(value, list)
        return [str(item) for item in value]

    def objects(self, name: str) -> list[Values]:
        value = self.data.get(name) or []
        assert isinstance(value, list)
        return [Values(item) for item in value if isinstance(item, dict)]

    def mapping(self, name: str) -> dict[str, object]:
        value = self.data.get(name) or {}
        assert isinstance(value, dict)
        return dict(value)


@dataclass(frozen=True)
class ObjectSchema:
    """A JSON object with known fields; unknown fields are refused."""

    fields: Mapping[str, Field]
    required: frozenset[str] = frozenset()
    nullable: bool = False
    min_fields: int = 0

    def parse(self, value: object, path: str) -> object:
        if _check_null(value, path, self.nullable):
            return None
        if not isinstance(value, dict):
            raise RequestInvalid(path or "body", "must be a JSON object")
        for name in value:
            if name not in self.fields:
                raise RequestInvalid(_join(path, str(name)), "unknown field")
        for name in sorted(self.required):
            if name not in value:
                raise RequestInvalid(_join(path, name), "is required")
        if len(value) < self.min_fields:
            raise RequestInvalid(path or "body", "must contain at least one field")
        return {
            name: self.fields[name].parse(entry, _join(path, name)) for name, entry in value.items()
        }

    def validate(self, value: object) -> Values:
        parsed = self.parse(value, "")
        assert isinstance(parsed, dict)
        return Values(parsed)

    def json_schema(self) -> JsonSchema:
        schema: JsonSchema = {
            "type": "object",
            "properties": {name: entry.json_schema() for name, entry in self.fields.items()},
            "additionalProperties": False,
        }
        if self.required:
            schema["required"] = sorted(self.required)
        if self.min_fields:
            schema["minProperties"] = self.min_fields
        return _with_null(schema, self.nullable)


# Query strings ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueryParameter:
    """One query-string parameter: its converter from text and its JSON Schema."""

    convert: Callable[[str, str], object]
    schema: JsonSchema
    description: str = ""


def _convert_text(max_length: int) -> Callable[[str, str], object]:
    def convert(text: str, name: str) -> object:
        if len(text) > max_length:
            raise RequestInvalid(name, f"must be at most {max_length} characters")
        if "\x00" in text:
            raise RequestInvalid(name, "must not contain NUL characters")
        return text.strip()

    return convert


def query_text(description: str = "", max_length: int = 200) -> QueryParameter:
    return QueryParameter(
        _convert_text(max_length), {"type": "string", "maxLength": max_length}, description
    )


def query_integer(
    description: str = "",
    minimum: int = -BIG_INTEGER_COLUMN_MAXIMUM,
    maximum: int = BIG_INTEGER_COLUMN_MAXIMUM,
) -> QueryParameter:
    def convert(text: str, name: str) -> object:
        if re.fullmatch(r"-?[0-9]{1,19}", text.strip()) is None:
            raise RequestInvalid(name, "must be an integer")
        number = int(text)
        if number < minimum:
            raise RequestInvalid(name, f"must be at least {minimum}")
        if number > maximum:
            raise RequestInvalid(name, f"must be at most {maximum}")
        return number

    schema: JsonSchema = {"type": "integer", "minimum": minimum, "maximum": maximum}
    return QueryParameter(convert, schema, description)


def query_boolean(description: str = "") -> QueryParameter:
    def convert(text: str, name: str) -> object:
        lowered = text.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise RequestInvalid(name, "must be true or false")

    return QueryParameter(convert, {"type": "boolean"}, description)


def query_datetime(description: str = "") -> QueryParameter:
    return QueryParameter(parse_datetime, {"type": "string", "format": "date-time"}, description)


def query_choice(choices: tuple[str, ...], description: str = "") -> QueryParameter:
    def convert(text: str, name: str) -> object:
        if text not in choices:
            raise RequestInvalid(name, "must be one of: " + ", ".join(choices))
        return text

    return QueryParameter(convert, {"type": "string", "enum": list(choices)}, description)


PAGE_LIMIT_MAXIMUM = 500


def pagination_parameters(default_limit: int = 50) -> dict[str, QueryParameter]:
    return {
        "limit": query_integer(
            f"page size (default {default_limit})", minimum=1, maximum=PAGE_LIMIT_MAXIMUM
        ),
        "offset": query_integer("items to skip", minimum=0, maximum=INTEGER_COLUMN_MAXIMUM),
    }


@dataclass(frozen=True)
class QuerySchema:
    parameters: Mapping[str, QueryParameter] = field(default_factory=dict)

    def validate(self, pairs: list[tuple[str, str]]) -> Values:
        parsed: dict[str, object] = {}
        for name, text in pairs:
            parameter = self.parameters.get(name)
            if parameter is None:
                raise RequestInvalid(name, "unknown query parameter")
            if name in parsed:
                raise RequestInvalid(name, "given more than once")
            if text.strip() == "":
                continue
            parsed[name] = parameter.convert(text, name)
        return Values(parsed)

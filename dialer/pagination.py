"""One page of a list answer."""

from __future__ import annotations

from collections.abc import Sequence, Sized
from dataclasses import dataclass
from typing import Generic, TypeVar

from dialer.errors import ValidationFailed

MAXIMUM_PAGE_SIZE = 500

Item = TypeVar("Item")


@dataclass(frozen=True)
class Page(Generic[Item]):
    """``items`` of a query starting at ``offset``; ``total`` counts the matching rows.

    Broad searches stop counting early: then ``total_is_exact`` is False and ``total`` is a lower
    bound that is still larger than ``offset + len(items)`` whenever more rows follow, so
    ``has_more`` is always right.
    """

    items: Sequence[Item]
    total: int
    limit: int
    offset: int
    total_is_exact: bool = True

    @property
    def has_more(self) -> bool:
        return self.offset + len(self.items) < self.total


def check_page_bounds(limit: int, offset: int) -> None:
    """Raise ValidationFailed unless 1 <= limit <= MAXIMUM_PAGE_SIZE and offset >= 0."""
    if not 1 <= limit <= MAXIMUM_PAGE_SIZE:
        raise ValidationFailed("limit", f"must be between 1 and {MAXIMUM_PAGE_SIZE}")
    if offset < 0:
        raise ValidationFailed("offset", "must not be negative")


def count_cap(limit: int, offset: int, minimum: int) -> int:
    """How many rows to count at most so that ``Page.has_more`` stays right."""
    return max(minimum, offset + limit + 1)


def page_is_last(items: Sized, limit: int, offset: int) -> bool:
    """True when a page fetched with ``limit``/``offset`` shows the end of the result, so the
    total is ``offset + len(items)`` without counting (an empty page past the end is not)."""
    return len(items) < limit and (len(items) > 0 or offset == 0)

"""Per-source token buckets: how many messages one IP address may make us process."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass


@dataclass(frozen=True)
class RateLimit:
    """Token bucket per source IP: ``messages_per_second`` sustained, ``burst`` at once.

    Messages over the limit are dropped unanswered and counted. At most ``max_sources`` buckets
    are kept (the least recently seen source is forgotten first), so a flood from spoofed
    sources cannot grow memory without bound.
    """

    messages_per_second: float = 50.0
    burst: float = 200.0
    max_sources: int = 10_000


@dataclass
class _Bucket:
    tokens: float
    updated_at: float


class SourceRateLimiter:
    """Decides, message by message, whether a source is within its :class:`RateLimit`."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def allow(self, source_host: str, now: float) -> bool:
        """Take one token from ``source_host``'s bucket; False when it is empty."""
        bucket = self._buckets.get(source_host)
        if bucket is None:
            bucket = _Bucket(self.limit.burst, now)
            self._buckets[source_host] = bucket
            while len(self._buckets) > self.limit.max_sources:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(source_host)
            elapsed = max(0.0, now - bucket.updated_at)
            bucket.tokens = min(
                self.limit.burst, bucket.tokens + elapsed * self.limit.messages_per_second
            )
            bucket.updated_at = now
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

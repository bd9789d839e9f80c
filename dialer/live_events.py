"""Live events for browsers: a per-user ordered stream with replay after a reconnect.

Every event a user should see (call transitions, contact updates, follow-ups due, operator state)
is published to a set of user ids. Each user has their own increasing sequence number, so a tab
that reconnects says "the last one I saw was N" and receives exactly what it missed, in order.

`EventBus` is the interface the rest of the system talks to; `InProcessEventBus` keeps recent
history in memory for a single server process. A bus shared by several processes (PostgreSQL
LISTEN/NOTIFY) implements the same interface.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

_MESSAGE_HEAD = '{"type": "event", "sequence": '


class SharedEncoding:
    """The JSON of one publication minus the sequence number, shared by its whole audience.

    Every user gets the same kind, payload and time under their own number, and the number
    comes first in the message: the rest is encoded once per publication, not once per user.
    """

    __slots__ = ("tail", "tail_bytes")

    def __init__(self, kind: str, payload: Mapping[str, object], published_at: datetime) -> None:
        rest = json.dumps(
            {"kind": kind, "payload": dict(payload), "published_at": published_at.isoformat()},
            default=_json_default,
            ensure_ascii=False,
        )
        # '{"kind": ...}' becomes ', "kind": ...}', to follow '..."sequence": N'.
        self.tail = ", " + rest[1:]
        self.tail_bytes = self.tail.encode()


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One event as a given user sees it: ``sequence`` counts up per user from 1."""

    sequence: int
    kind: str
    payload: Mapping[str, object]
    published_at: datetime
    # The publication's shared JSON (``InProcessEventBus.publish``), when there is one.
    shared: SharedEncoding | None = field(default=None, repr=False, compare=False)
    _message_text: str | None = field(default=None, init=False, repr=False, compare=False)
    _message_bytes: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def as_json(self) -> dict[str, object]:
        return {
            "sequence": self.sequence,
            "kind": self.kind,
            "payload": dict(self.payload),
            "published_at": self.published_at.isoformat(),
        }

    @property
    def message_text(self) -> str:
        """The event as a client receives it: ``{"type": "event", ...as_json()}`` in JSON.

        Encoded on first use and kept: a bus hands the same ``LiveEvent`` to every subscription
        of the user, so it is encoded once however many of their tabs (sockets) carry it.
        """
        text = self._message_text
        if text is None:
            if self.shared is not None:
                text = f"{_MESSAGE_HEAD}{self.sequence}{self.shared.tail}"
            else:
                text = json.dumps(
                    {"type": "event", **self.as_json()}, default=_json_default, ensure_ascii=False
                )
            object.__setattr__(self, "_message_text", text)
        return text

    @property
    def message_bytes(self) -> bytes:
        """``message_text`` in UTF-8, kept like it: what a socket writes, for every tab alike."""
        encoded = self._message_bytes
        if encoded is None:
            if self.shared is not None and self._message_text is None:
                encoded = b"%s%d%s" % (_MESSAGE_HEAD_BYTES, self.sequence, self.shared.tail_bytes)
            else:
                encoded = self.message_text.encode()
            object.__setattr__(self, "_message_bytes", encoded)
        return encoded


_MESSAGE_HEAD_BYTES = _MESSAGE_HEAD.encode()


def _json_default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


@dataclass(frozen=True)
class ReplayGap:
    """The events after ``requested_after`` are no longer held: the client must reload its state.

    ``resume_from`` is the sequence number the stream continues after.
    """

    requested_after: int
    resume_from: int


class Subscription(Protocol):
    """What a subscriber gets: the replay outcome and a stream of new events.

    Iterate it (``async for``) for one event at a time, or call ``next_events`` to take every
    event waiting at once (a socket sends them all on one wake-up). The stream ends (empty
    batch, end of iteration) once the subscription is closed and what was queued is taken; the
    bus closes a subscriber that falls too far behind.
    """

    gap: ReplayGap | None

    def __aiter__(self) -> AsyncIterator[LiveEvent]: ...

    async def next_events(self) -> Sequence[LiveEvent]: ...

    def deliver_directly(self, writer: Callable[[LiveEvent], bool] | None) -> None:
        """Let the bus hand new events to ``writer`` at publication, skipping the queue.

        Only while the reader waits with nothing queued (so order is kept); ``writer`` returns
        False when it cannot take the event now (the socket pushes back), and the event is then
        queued for the reader as usual. A bus may ignore this and always queue.
        """
        ...

    def close(self) -> None: ...


class EventBus(Protocol):
    async def publish(
        self, audience: Iterable[int], kind: str, payload: Mapping[str, object]
    ) -> None: ...

    def subscribe(self, user_id: int, after_sequence: int | None) -> Subscription: ...

    def last_sequence(self, user_id: int) -> int: ...


class _BufferedSubscription:
    """A subscriber's events not yet taken, bounded; one waiting reader at a time."""

    def __init__(
        self,
        user_id: int,
        gap: ReplayGap | None,
        backlog: Iterable[LiveEvent],
        limit: int,
        on_close: Callable[[_BufferedSubscription], None],
    ) -> None:
        self.user_id = user_id
        self.gap = gap
        self._pending: collections.deque[LiveEvent] = collections.deque(backlog)
        self._limit = len(self._pending) + limit
        self._on_close = on_close
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self._writer: Callable[[LiveEvent], bool] | None = None

    def deliver_directly(self, writer: Callable[[LiveEvent], bool] | None) -> None:
        self._writer = writer

    def offer(self, event: LiveEvent) -> bool:
        """Hand over or queue an event; False when the subscriber is too far behind (it is then
        closed).

        With a direct writer, an event goes straight to it while the reader is parked with an
        empty queue: everything before it was already sent, so the order holds, and one socket
        costs one write instead of waking a task. Otherwise it waits in the queue."""
        if self._closed:
            return False
        writer = self._writer
        if writer is not None and self._waiter is not None and not self._pending and writer(event):
            return True
        if len(self._pending) >= self._limit:
            self.close()
            return False
        self._pending.append(event)
        self._wake_reader()
        return True

    def __aiter__(self) -> AsyncIterator[LiveEvent]:
        return self

    async def __anext__(self) -> LiveEvent:
        while not self._pending:
            if self._closed:
                raise StopAsyncIteration
            await self._wait()
        return self._pending.popleft()

    async def next_events(self) -> Sequence[LiveEvent]:
        while not self._pending:
            if self._closed:
                return ()
            await self._wait()
        events = tuple(self._pending)
        self._pending.clear()
        return events

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._on_close(self)
        # Ends the reader's stream after what is already queued; the client then reconnects
        # and replays from the last sequence number it saw.
        self._wake_reader()

    async def _wait(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            if self._waiter is waiter:
                self._waiter = None

    def _wake_reader(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)


@dataclass
class _UserStream:
    next_sequence: int = 1
    history: collections.deque[LiveEvent] = field(default_factory=collections.deque)
    subscribers: list[_BufferedSubscription] = field(default_factory=list)


class InProcessEventBus:
    """An `EventBus` for one process: bounded history per user, bounded queue per subscriber."""

    def __init__(
        self,
        *,
        history_per_user: int = 1000,
        queue_per_subscriber: int = 1000,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._history_per_user = history_per_user
        self._queue_per_subscriber = queue_per_subscriber
        self._clock = clock
        self._streams: dict[int, _UserStream] = collections.defaultdict(_UserStream)

    async def publish(
        self, audience: Iterable[int], kind: str, payload: Mapping[str, object]
    ) -> None:
        published_at = self._clock()
        frozen_payload = dict(payload)
        shared = SharedEncoding(kind, frozen_payload, published_at)
        for user_id in set(audience):
            stream = self._streams[user_id]
            event = LiveEvent(stream.next_sequence, kind, frozen_payload, published_at, shared)
            stream.next_sequence += 1
            stream.history.append(event)
            while len(stream.history) > self._history_per_user:
                stream.history.popleft()
            for subscriber in list(stream.subscribers):
                subscriber.offer(event)

    def last_sequence(self, user_id: int) -> int:
        stream = self._streams.get(user_id)
        return 0 if stream is None else stream.next_sequence - 1

    def subscribe(self, user_id: int, after_sequence: int | None) -> Subscription:
        stream = self._streams[user_id]
        last = stream.next_sequence - 1
        backlog: list[LiveEvent] = []
        gap: ReplayGap | None = None
        if after_sequence is not None and after_sequence < last:
            oldest_held = stream.history[0].sequence if stream.history else last + 1
            if after_sequence + 1 < oldest_held or after_sequence < 0:
                gap = ReplayGap(requested_after=after_sequence, resume_from=last)
            else:
                backlog.extend(
                    itertools.islice(stream.history, after_sequence + 1 - oldest_held, None)
                )
        elif after_sequence is not None and after_sequence > last:
            # The client saw numbers this process never issued (server restarted): reload.
            gap = ReplayGap(requested_after=after_sequence, resume_from=last)
        subscription = _BufferedSubscription(
            user_id, gap, backlog, self._queue_per_subscriber, self._unsubscribe
        )
        stream.subscribers.append(subscription)
        return subscription

    def _unsubscribe(self, subscription: _BufferedSubscription) -> None:
        stream = self._streams.get(subscription.user_id)
        if stream is not None and subscription in stream.subscribers:
            stream.subscribers.remove(subscription)

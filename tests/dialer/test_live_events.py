"""The per-user live event stream: ordering, replay after reconnect, gaps, slow subscribers."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

from dialer.live_events import InProcessEventBus, LiveEvent, Subscription


async def _take(subscription: Subscription, count: int) -> list[LiveEvent]:
    received: list[LiveEvent] = []
    async for event in subscription:
        received.append(event)
        if len(received) == count:
            break
    return received


async def test_each_user_counts_their_own_sequence() -> None:
    bus = InProcessEventBus()
    operator = bus.subscribe(1, after_sequence=None)
    supervisor = bus.subscribe(2, after_sequence=None)
    await bus.publish([1, 2], "call.created", {"call_id": 7})
    await bus.publish([2], "call.created", {"call_id": 8})
    await bus.publish([1, 2], "call.ringing", {"call_id": 7})

    operator_events = await _take(operator, 2)
    supervisor_events = await _take(supervisor, 3)
    assert [(e.sequence, e.kind) for e in operator_events] == [
        (1, "call.created"),
        (2, "call.ringing"),
    ]
    assert [e.sequence for e in supervisor_events] == [1, 2, 3]
    assert supervisor_events[1].payload == {"call_id": 8}


async def test_reconnect_with_last_sequence_gets_exactly_the_missed_events() -> None:
    bus = InProcessEventBus()
    first = bus.subscribe(1, after_sequence=None)
    for state in ("created", "dialing", "ringing"):
        await bus.publish([1], f"call.{state}", {"call_id": 1})
    seen = await _take(first, 2)
    first.close()  # the socket drops after the client saw two events
    for state in ("answered", "ended"):
        await bus.publish([1], f"call.{state}", {"call_id": 1})

    second = bus.subscribe(1, after_sequence=seen[-1].sequence)
    assert second.gap is None
    missed = await _take(second, 3)
    assert [e.kind for e in missed] == ["call.ringing", "call.answered", "call.ended"]
    assert [e.sequence for e in missed] == [3, 4, 5]


async def test_closed_subscription_ends_its_stream_and_gets_nothing_more() -> None:
    bus = InProcessEventBus()
    subscription = bus.subscribe(1, after_sequence=None)
    reader = asyncio.ensure_future(_take(subscription, 10))
    await asyncio.sleep(0)
    subscription.close()
    assert await asyncio.wait_for(reader, 1) == []
    await bus.publish([1], "call.created", {})
    assert bus.last_sequence(1) == 1


async def test_replay_beyond_held_history_reports_a_gap() -> None:
    bus = InProcessEventBus(history_per_user=3)
    for number in range(10):
        await bus.publish([1], "contact.updated", {"n": number})
    subscription = bus.subscribe(1, after_sequence=2)
    assert subscription.gap is not None
    assert subscription.gap.resume_from == 10


async def test_sequence_from_before_a_restart_reports_a_gap() -> None:
    bus = InProcessEventBus()
    await bus.publish([1], "call.created", {})
    subscription = bus.subscribe(1, after_sequence=40)
    assert subscription.gap is not None
    assert subscription.gap.resume_from == 1


async def test_a_subscriber_that_falls_behind_is_cut_off_not_the_publisher() -> None:
    bus = InProcessEventBus(history_per_user=5, queue_per_subscriber=2)
    slow = bus.subscribe(1, after_sequence=None)
    for number in range(20):
        await bus.publish([1], "call.created", {"n": number})
    received = await asyncio.wait_for(_take(slow, 100), 1)
    # The stream ended early instead of growing without bound; a reconnect replays the rest.
    assert len(received) < 20
    assert [e.sequence for e in received] == list(range(1, len(received) + 1))
    again = bus.subscribe(1, after_sequence=17)
    assert [e.sequence for e in await _take(again, 3)] == [18, 19, 20]


async def test_a_slow_subscriber_does_not_hold_up_another_tab_of_the_same_user() -> None:
    bus = InProcessEventBus(queue_per_subscriber=5)
    slow = bus.subscribe(1, after_sequence=None)  # a tab that stopped reading
    fast = bus.subscribe(1, after_sequence=None)
    received: list[LiveEvent] = []
    for number in range(20):
        await bus.publish([1], "contact.updated", {"n": number})
        received.extend(await fast.next_events())
    assert [e.sequence for e in received] == list(range(1, 21))
    # The slow one kept a bounded backlog, in order, and then its stream ended.
    assert [e.sequence for e in [event async for event in slow]] == [1, 2, 3, 4, 5]


async def test_next_events_takes_everything_waiting_and_iteration_loses_nothing() -> None:
    bus = InProcessEventBus()
    subscription = bus.subscribe(1, after_sequence=None)
    waiting = asyncio.ensure_future(subscription.next_events())
    await asyncio.sleep(0)
    for number in range(3):
        await bus.publish([1], "contact.updated", {"n": number})
    assert [e.sequence for e in await asyncio.wait_for(waiting, 1)] == [1, 2, 3]
    for number in range(3, 6):
        await bus.publish([1], "contact.updated", {"n": number})
    assert [e.sequence for e in await _take(subscription, 1)] == [4]  # one at a time ...
    assert [e.sequence for e in await subscription.next_events()] == [5, 6]  # ... then the rest
    subscription.close()
    assert await subscription.next_events() == ()


async def test_an_event_reads_as_the_json_message_a_tab_receives() -> None:
    published_at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    bus = InProcessEventBus(clock=lambda: published_at)
    first_tab = bus.subscribe(1, after_sequence=None)
    second_tab = bus.subscribe(1, after_sequence=None)
    await bus.publish([1], "call.ringing", {"call_id": 7, "at": published_at, "name": "Ёлка"})
    (first,) = await first_tab.next_events()
    (second,) = await second_tab.next_events()
    expected = {
        "type": "event",
        "sequence": 1,
        "kind": "call.ringing",
        "payload": {"call_id": 7, "at": "2026-03-01T09:30:00+00:00", "name": "Ёлка"},
        "published_at": "2026-03-01T09:30:00+00:00",
    }
    assert json.loads(first.message_text) == expected
    assert second.message_text == first.message_text


async def test_every_user_gets_the_same_message_under_their_own_number() -> None:
    published_at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    bus = InProcessEventBus(clock=lambda: published_at)
    await bus.publish([2], "call.created", {"call_id": 1})  # user 2 is one number ahead
    operator = bus.subscribe(1, after_sequence=None)
    supervisor = bus.subscribe(2, after_sequence=None)
    await bus.publish([1, 2], "call.answered", {"call_id": 7, "name": "Ёлка", "at": published_at})
    (for_operator,) = await operator.next_events()
    (for_supervisor,) = await supervisor.next_events()
    expected = {
        "type": "event",
        "kind": "call.answered",
        "payload": {"call_id": 7, "name": "Ёлка", "at": "2026-03-01T09:30:00+00:00"},
        "published_at": "2026-03-01T09:30:00+00:00",
    }
    assert json.loads(for_operator.message_text) == {**expected, "sequence": 1}
    assert json.loads(for_supervisor.message_text) == {**expected, "sequence": 2}
    for event in (for_operator, for_supervisor):
        assert event.message_bytes == event.message_text.encode()
        # Exactly what encoding the event on its own gives.
        alone = LiveEvent(event.sequence, event.kind, event.payload, event.published_at)
        assert alone.message_text == event.message_text
        assert alone.message_bytes == event.message_bytes


async def test_a_direct_writer_gets_events_in_order_and_a_refusal_falls_back_to_the_queue() -> None:
    """A socket that takes events as they are published gets them without its reader waking;
    when it pushes back, the events queue up, and none is lost, repeated or reordered."""
    bus = InProcessEventBus()
    subscription = bus.subscribe(1, after_sequence=None)
    written: list[int] = []
    accepting = True

    def write(event: LiveEvent) -> bool:
        if accepting:
            written.append(event.sequence)
        return accepting

    subscription.deliver_directly(write)
    reading = asyncio.ensure_future(subscription.next_events())
    await asyncio.sleep(0)  # the reader waits: events may go straight to the writer
    for number in range(3):
        await bus.publish([1], "contact.updated", {"n": number})
    assert written == [1, 2, 3]
    assert not reading.done()

    accepting = False  # the socket pushes back: 4 waits for the reader ...
    await bus.publish([1], "contact.updated", {"n": 3})
    accepting = True  # ... and 5 must not overtake it, writable or not
    await bus.publish([1], "contact.updated", {"n": 4})
    assert [event.sequence for event in await asyncio.wait_for(reading, 1)] == [4, 5]
    assert written == [1, 2, 3]

    # While the reader is busy (not waiting), events queue as well.
    await bus.publish([1], "contact.updated", {"n": 5})
    assert written == [1, 2, 3]
    assert [event.sequence for event in await subscription.next_events()] == [6]

    subscription.deliver_directly(None)
    reading = asyncio.ensure_future(subscription.next_events())
    await asyncio.sleep(0)
    await bus.publish([1], "contact.updated", {"n": 6})
    assert [event.sequence for event in await asyncio.wait_for(reading, 1)] == [7]
    assert written == [1, 2, 3]

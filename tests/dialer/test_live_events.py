"""The per-user live event stream: ordering, replay after reconnect, gaps, slow subscribers."""

from __future__ import annotations

import asyncio

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

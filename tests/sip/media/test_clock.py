"""Media clock: absolute 20 ms deadlines, bounded catch-up, one timer for every stream."""

from __future__ import annotations

import asyncio
import itertools
import socket

import pytest

from sip.media.clock import Address, MediaClock, OutgoingDatagram, TickSchedule
from tests.sip.media.conftest import ManualLoop


def test_schedule_deadlines_are_absolute() -> None:
    schedule = TickSchedule(50.0, interval=0.02, max_burst=3, early_tolerance=0.0)
    assert [schedule.deadline(index) for index in range(4)] == [50.0, 50.02, 50.04, 50.06]
    assert schedule.pop_due(50.019) is None
    assert schedule.pop_due(50.0205) == 1
    assert schedule.pop_due(50.0206) is None
    assert schedule.pop_due(50.047) == 2  # 7 ms late: no drift, next is still 50.06
    assert schedule.next_deadline() == pytest.approx(50.06)
    assert schedule.pop_due(50.0601) == 3


def test_schedule_catch_up_is_bounded_and_skips_the_rest() -> None:
    schedule = TickSchedule(0.0, interval=0.02, max_burst=3, early_tolerance=0.0)
    assert schedule.pop_due(0.021) == 1
    # at 0.201 ticks 2..10 are due: 2..7 are skipped, 8, 9, 10 still run (one per call)
    assert [schedule.pop_due(0.201) for _ in range(4)] == [8, 9, 10, None]
    assert schedule.skipped == 6
    assert schedule.next_index == 11
    assert [schedule.pop_due(0.241) for _ in range(3)] == [11, 12, None]  # two behind: both
    assert schedule.skipped == 6


def test_schedule_resume_after_idle_does_not_count_skips() -> None:
    schedule = TickSchedule(0.0, interval=0.02, early_tolerance=0.0)
    schedule.resume(10.005)
    assert schedule.next_index == 501
    assert schedule.skipped == 0


def test_clock_arms_timers_on_exact_deadlines_despite_late_wakeups() -> None:
    loop = ManualLoop(now=100.0)
    clock = MediaClock(loop, interval=0.02, max_burst=3)
    seen: list[int] = []
    clock.subscribe(seen.append)
    for wakeup in range(10):
        loop.run_next(lateness=0.004 * (wakeup % 3))  # wakes 0, 4 or 8 ms late
    assert seen == list(range(1, 11))
    assert loop.requested == [pytest.approx(100.0 + 0.02 * n, abs=1e-9) for n in range(1, 12)]
    assert clock.statistics.skipped_ticks == 0


def test_clock_catches_up_a_stall_with_a_bounded_burst() -> None:
    loop = ManualLoop(now=0.0)
    clock = MediaClock(loop, interval=0.02, max_burst=3)
    seen: list[int] = []
    clock.subscribe(seen.append)
    loop.run_next()
    loop.run_next(lateness=0.150)  # deadline of tick 2 at 0.04, woken at 0.19: tick 9 is due
    assert seen == [1, 7]
    assert clock.statistics.skipped_ticks == 5
    # the missed ticks 8 and 9 are re-armed on their own (past) deadlines: the loop runs
    # them in the next iterations, after polling the sockets, then goes back to the grid
    assert loop.requested[-1] == pytest.approx(0.16)
    loop.run_next()
    assert loop.requested[-1] == pytest.approx(0.18)
    loop.run_next()
    assert seen == [1, 7, 8, 9]
    assert loop.requested[-1] == pytest.approx(0.20)
    loop.run_next()
    assert seen[-1] == 10
    assert clock.statistics.skipped_ticks == 5


def test_all_streams_share_one_timer_and_one_tick() -> None:
    loop = ManualLoop(now=5.0)
    clock = MediaClock(loop)
    ticks: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    subscriptions = {name: clock.subscribe(ticks[name].append) for name in ticks}
    assert loop.pending() == 1
    loop.run_next()
    loop.run_next()
    assert ticks == {"a": [1, 2], "b": [1, 2], "c": [1, 2]}
    subscriptions["b"].cancel()
    loop.run_next()
    assert ticks["b"] == [1, 2]
    assert ticks["a"] == [1, 2, 3]
    assert clock.statistics.subscribers == 2
    subscriptions["a"].cancel()
    subscriptions["c"].cancel()
    assert loop.pending() == 0  # no subscriber, no timer
    late_joiner: list[int] = []
    loop.now += 1.0
    clock.subscribe(late_joiner.append)
    loop.run_next()
    assert late_joiner == [54]  # tick indices stay on the original grid
    assert loop.pending() == 1


def test_a_failing_subscriber_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    loop = ManualLoop()
    clock = MediaClock(loop)

    def broken(index: int) -> None:
        raise RuntimeError("boom")

    seen: list[int] = []
    clock.subscribe(broken)
    clock.subscribe(seen.append)
    loop.run_next()
    assert seen == [1]
    assert "boom" in caplog.text
    assert loop.pending() == 1


async def test_clock_on_a_real_loop_delivers_consecutive_ticks() -> None:
    clock = MediaClock()
    seen: list[int] = []
    done = asyncio.get_running_loop().create_future()

    def tick(index: int) -> None:
        seen.append(index)
        if len(seen) == 5 and not done.done():
            done.set_result(None)

    subscription = clock.subscribe(tick)
    await asyncio.wait_for(done, timeout=10)
    subscription.cancel()
    schedule = clock.schedule
    assert schedule is not None
    assert seen[0] == 1
    assert seen == sorted(seen)
    assert len(seen) + schedule.skipped == seen[-1]  # every index either ran or was skipped
    clock.close()


async def test_a_tick_queues_sends_reads_then_runs_the_after_send_subscribers() -> None:
    loop = asyncio.get_running_loop()
    clock = MediaClock()
    sender, receiver = (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
    )
    for udp_socket in (sender, receiver):
        udp_socket.bind(("127.0.0.1", 0))
        udp_socket.setblocking(False)
    events: list[str] = []
    done = loop.create_future()

    def queue_one(index: int) -> None:
        events.append(f"tick {index}")
        destination = receiver.getsockname()
        clock.queue_datagram(
            (sender.sendto, b"tick %d" % index, destination, lambda _: None, destination)
        )

    def read_one(now: float) -> None:
        data, _ = receiver.recvfrom(100)
        events.append(f"read {data.decode()}")

    def after_send(index: int) -> None:
        events.append(f"after {index}")
        if index >= 3 and not done.done():
            done.set_result(None)

    clock.subscribe(queue_one)
    clock.add_reader(receiver.fileno(), read_one)
    clock.subscribe(after_send, after_send=True)
    await asyncio.wait_for(done, timeout=10)
    clock.close()
    for udp_socket in (sender, receiver):
        udp_socket.close()
    # each tick's datagram is read in that same tick, after it was sent, before the playout
    assert len(events) >= 9
    triples = [events[start : start + 3] for start in range(0, len(events) - 2, 3)]
    for triple in triples:
        index = triple[0].removeprefix("tick ")
        assert triple == [f"tick {index}", f"read tick {index}", f"after {index}"]


async def test_a_datagram_that_cannot_be_sent_is_reported_and_the_tick_goes_on() -> None:
    loop = asyncio.get_running_loop()
    clock = MediaClock()
    udp_socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp_socket.bind(("127.0.0.1", 0))
    failures: list[OSError] = []
    ticks: list[int] = []
    done = loop.create_future()

    def tick(index: int) -> None:
        ticks.append(index)
        # broadcast without SO_BROADCAST: refused by the kernel, nothing leaves the machine
        broadcast = ("255.255.255.255", 9)
        clock.queue_datagram((udp_socket.sendto, b"x", broadcast, failures.append, broadcast))
        if len(ticks) == 3 and not done.done():
            done.set_result(None)

    clock.subscribe(tick)
    await asyncio.wait_for(done, timeout=10)
    clock.close()
    udp_socket.close()
    assert len(failures) >= 2
    assert all(isinstance(failure, PermissionError) for failure in failures)


def test_the_send_phase_groups_datagrams_by_destination_keeping_their_order() -> None:
    loop = ManualLoop(now=0.0)
    clock = MediaClock(loop)
    sent: list[tuple[bytes, Address]] = []
    first, second = ("127.0.0.1", 4000), ("127.0.0.1", 4002)

    def send(data: bytes | bytearray, address: Address) -> None:
        sent.append((bytes(data), address))

    def ignore(error: OSError) -> None:
        raise AssertionError(f"nothing fails here: {error}")

    queued: list[OutgoingDatagram] = [
        (send, b"a1", first, ignore, first),
        (send, b"b1", second, ignore, second),
        (send, b"a2", first, ignore, first),
        (send, b"b2", second, ignore, second),
    ]

    def tick(index: int) -> None:
        for datagram in queued:
            clock.queue_datagram(datagram)

    def runs_of(destinations: list[Address]) -> list[Address]:
        """The destinations, each run of the same one once."""
        return [to for at, to in enumerate(destinations) if at == 0 or destinations[at - 1] != to]

    clock.subscribe(tick)
    for _ in range(2):  # the second tick reuses the order worked out on the first
        sent.clear()
        loop.run_next()
        assert [data for data, to in sent if to == first] == [b"a1", b"a2"]
        assert [data for data, to in sent if to == second] == [b"b1", b"b2"]
        assert len(runs_of([to for _, to in sent])) == 2  # each destination's packets together
    # another datagram on a later tick (say a marked packet) goes too, in its group
    queued.append((send, b"a3", first, ignore, first))
    sent.clear()
    loop.run_next()
    assert [data for data, to in sent if to == first] == [b"a1", b"a2", b"a3"]
    assert len(sent) == 5
    assert len(runs_of([to for _, to in sent])) == 2
    clock.close()


def test_a_send_observer_hears_of_each_datagram_its_socket_took_and_not_of_failures() -> None:
    loop = ManualLoop(now=0.0)
    clock = MediaClock(loop)
    destination = ("127.0.0.1", 4000)
    handed_over: list[bytes] = []
    failures: list[OSError] = []
    observed: list[tuple[object, list[bytes]]] = []

    def send(data: bytes | bytearray, address: Address) -> None:
        handed_over.append(bytes(data))

    def refuse(data: bytes | bytearray, address: Address) -> None:
        raise BlockingIOError("socket buffer full")

    def observe(sender: object) -> None:
        observed.append((sender, list(handed_over)))  # what had been handed over by then

    def tick(index: int) -> None:
        clock.queue_datagram((send, b"one", destination, failures.append, destination))
        clock.queue_datagram((refuse, b"two", destination, failures.append, destination))
        clock.queue_datagram((send, b"three", destination, failures.append, destination))

    clock.observe_sends(observe)
    clock.subscribe(tick)
    loop.run_next()
    assert observed == [(send, [b"one"]), (send, [b"one", b"three"])]
    assert len(failures) == 1
    clock.observe_sends(None)
    loop.run_next()
    assert len(observed) == 2  # no observer: nothing more told
    assert handed_over == [b"one", b"three", b"one", b"three"]
    clock.close()


def test_clocks_given_phases_tick_apart_on_one_grid_wherever_they_start() -> None:
    # two media processes' clocks (one machine: their loops read the same monotonic time),
    # started at unrelated moments, with phases 0 and half an interval
    first_loop, second_loop = ManualLoop(now=1000.1234), ManualLoop(now=1000.1301)
    first = MediaClock(first_loop, phase=0.0)
    second = MediaClock(second_loop, phase=0.010)
    for clock in (first, second):
        clock.subscribe(lambda index: None)
    first_deadlines: list[float] = []
    second_deadlines: list[float] = []
    for _ in range(3):
        first_deadlines.append(first_loop.requested[-1])
        second_deadlines.append(second_loop.requested[-1])
        first_loop.run_next()
        second_loop.run_next()
    for deadline in first_deadlines:  # on the grid of multiples of the interval
        assert deadline == pytest.approx(round(deadline / 0.020) * 0.020, abs=1e-9)
    for first_deadline, second_deadline in zip(first_deadlines, second_deadlines, strict=True):
        assert second_deadline - first_deadline == pytest.approx(0.010, abs=1e-9)
    assert [b - a for a, b in itertools.pairwise(first_deadlines)] == pytest.approx([0.020] * 2)
    assert first_deadlines[0] == pytest.approx(1000.14, abs=1e-9)  # the next grid point
    first.close()
    second.close()


def test_a_phase_outside_the_interval_is_refused() -> None:
    loop = ManualLoop(now=0.0)
    with pytest.raises(ValueError, match="phase"):
        MediaClock(loop, phase=0.020)
    with pytest.raises(ValueError, match="phase"):
        MediaClock(loop, phase=-0.001)

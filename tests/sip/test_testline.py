"""The built-in test line: a call hears the prompt, then its own audio echoed back."""

from __future__ import annotations

import asyncio

import numpy as np

from sip.causes import CallCause
from sip.phone import CallState, Phone
from sip.testline import TestLine, load_prompt
from tests.sip import peers

FRAME_BYTES = 320


def tone_sweep(seconds: float) -> bytes:
    """A rising sweep 300-3000 Hz: nothing like speech, easy to find in the echo."""
    times = np.arange(int(seconds * 8000)) / 8000
    phase = 2 * np.pi * (300 * times + (2700 / (2 * seconds)) * times**2)
    return (6000 * np.sin(phase)).astype("<i2").tobytes()


async def test_caller_hears_the_prompt_then_its_own_voice(
    test_line: TestLine, phone: Phone
) -> None:
    account = test_line.account()
    assert account.register is False
    call = await phone.call(account, "echo")
    received = bytearray()
    call.audio.add_tap(
        lambda direction, frame, _ts: received.extend(frame) if direction == "received" else None
    )
    assert await asyncio.wait_for(call.wait_answered(), 5)
    await asyncio.sleep(test_line.prompt_seconds + 0.1)
    ours = tone_sweep(1.0)
    for offset in range(0, len(ours), FRAME_BYTES):
        call.audio.send(ours[offset : offset + FRAME_BYTES])
    await asyncio.sleep(1.6)
    call.hangup()
    await asyncio.wait_for(call.wait_ended(), 5)

    assert (call.state, call.cause) == (CallState.ended, CallCause.local_hangup)
    heard = peers.pcm_to_samples(bytes(received))
    prompt = peers.pcm_to_samples(load_prompt())
    prompt_correlation, prompt_lag = peers.best_correlation(
        peers.g711_ulaw_round_trip(prompt), heard
    )
    assert prompt_correlation >= 0.9
    # Two G.711 hops (to the line and back) on our sweep.
    sweep = peers.g711_ulaw_round_trip(peers.pcm_to_samples(ours))
    echo_correlation, echo_lag = peers.best_correlation(sweep, heard)
    assert echo_correlation >= 0.9
    assert echo_lag > prompt_lag + prompt.size // 2  # the echo comes after the prompt
    assert test_line.calls_answered == 1


async def test_two_callers_at_once_each_hear_the_prompt(test_line: TestLine, phone: Phone) -> None:
    calls = [await phone.call(test_line.account(), f"echo{index}") for index in range(2)]
    answered = await asyncio.gather(*(call.wait_answered() for call in calls))
    assert answered == [True, True]
    await asyncio.sleep(1.0)
    for call in calls:
        call.hangup()
    await asyncio.gather(*(call.wait_ended() for call in calls))
    assert all(call.statistics.packets_received > 0 for call in calls)
    assert test_line.calls_answered == 2


async def test_dtmf_we_send_reaches_the_line(test_line: TestLine, phone: Phone) -> None:
    call = await phone.call(test_line.account(), "echo")
    assert await asyncio.wait_for(call.wait_answered(), 5)
    call.send_dtmf("12#")
    await asyncio.sleep(1.0)
    call.hangup()
    await asyncio.wait_for(call.wait_ended(), 5)
    (line_side,) = test_line.answered_calls
    assert line_side.dtmf_received == ["1", "2", "#"]


async def test_an_account_without_registration_is_not_registered(
    test_line: TestLine, phone: Phone
) -> None:
    registration = await asyncio.wait_for(phone.register(test_line.account()), 10)
    assert not registration.registered
    assert registration.successes == registration.failures == 0

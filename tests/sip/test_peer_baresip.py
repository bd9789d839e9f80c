"""baresip as the far-end phone: it auto-answers, plays a WAV to us and records what we send."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from sip.account import Account
from sip.causes import CallCause
from sip.phone import CallState, Phone
from sip.testline import load_prompt
from tests.sip import peers

pytestmark = pytest.mark.peers

FRAME_BYTES = 320


async def test_audio_flows_both_ways_with_baresip(phone: Phone, tmp_path: Path) -> None:
    prompt = peers.pcm_to_samples(load_prompt())
    wav = tmp_path / "far_end.wav"
    peers.write_wav(wav, prompt)
    ours = prompt[::-1].copy()  # speech-like, yet unlike what baresip plays
    baresip = await peers.start_baresip(tmp_path / "baresip", wav)
    try:
        account = Account(
            name="direct", host=peers.LOOPBACK, port=baresip.sip_port, username="alice",
            register=False,
        )  # fmt: skip
        call = await phone.call(account, baresip.username)
        sent = bytearray()
        received = bytearray()

        def tap(direction: str, frame: bytes, _timestamp: int) -> None:
            (sent if direction == "sent" else received).extend(frame)

        call.audio.add_tap(tap)
        assert await asyncio.wait_for(call.wait_answered(), 10)
        pcm = ours.astype("<i2").tobytes()
        for offset in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES):
            call.audio.send(pcm[offset : offset + FRAME_BYTES])
        await asyncio.wait_for(call.wait_ended(), 15)  # baresip hangs up at the end of its WAV
        await peers.wait_for_log(baresip.log, "terminated", seconds=5)
    finally:
        await baresip.stop()
    assert call.state is CallState.ended
    assert call.cause is CallCause.remote_hangup
    heard = peers.pcm_to_samples(bytes(received))
    correlation, _ = peers.best_correlation(peers.g711_ulaw_round_trip(prompt), heard)
    assert correlation >= 0.9
    # What baresip decoded from us (its sndfile dump) is what we sent.
    dumps = baresip.received_wavs()
    assert len(dumps) == 1
    decoded, channels, rate = peers.read_wav(dumps[0])
    assert (channels, rate) == (1, 8000)
    assert np.abs(decoded).max() > 1000
    correlation, _ = peers.best_correlation(peers.pcm_to_samples(bytes(sent)), decoded)
    assert correlation >= 0.9

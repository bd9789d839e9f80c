"""Calls from our Phone to SIPp callees on loopback: every outcome a dialer meets on a trunk."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from sip.account import Account
from sip.causes import CallCause
from sip.events import CallMediaChanged, CallProgress
from sip.phone import Call, CallState, DtmfReceived, Phone
from sip.testline import load_prompt
from tests.sip import peers

pytestmark = pytest.mark.peers

FRAME_BYTES = 320


def account_for(peer: peers.SippPeer, **settings: Any) -> Account:
    account = Account(
        name="sipp",
        host=peers.LOOPBACK,
        port=peer.sip_port,
        username="alice",
        password="wonderland",
        register=False,
    )
    return dataclasses.replace(account, **settings)


class Capture:
    """Frames the call sent and received (from the audio taps), with the call state then."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.sent = bytearray()
        self.received = bytearray()
        self.received_before_answer = bytearray()
        call.audio.add_tap(self._tap)

    def _tap(self, direction: str, frame: bytes, media_timestamp: int) -> None:
        if direction == "sent":
            self.sent += frame
        else:
            self.received += frame
            if self.call.answered_at is None:
                self.received_before_answer += frame


def speech(seconds: float) -> bytes:
    prompt = load_prompt()
    return prompt[: int(seconds * 8000) * 2 // FRAME_BYTES * FRAME_BYTES]


def send_pcm(call: Call, pcm: bytes) -> None:
    for offset in range(0, len(pcm), FRAME_BYTES):
        call.audio.send(pcm[offset : offset + FRAME_BYTES])


def samples(pcm: bytes | bytearray) -> npt.NDArray[np.int16]:
    return peers.pcm_to_samples(bytes(pcm))


async def wait_for(call: Call, event_type: type, seconds: float = 10.0) -> object:
    async with asyncio.timeout(seconds):
        async for event in call.events():
            if isinstance(event, event_type):
                return event
    raise AssertionError(f"the call ended without {event_type.__name__}")


@pytest.mark.parametrize(
    ("scenario", "codec"), [("answer_echo", "PCMU"), ("answer_echo_pcma", "PCMA")]
)
async def test_answered_call_hears_its_own_audio_echoed(
    phone: Phone, tmp_path: Path, scenario: str, codec: str
) -> None:
    async with peers.sipp(scenario, tmp_path, rtp_echo=True) as peer:
        call = await phone.call(account_for(peer), "echo")
        capture = Capture(call)
        assert await asyncio.wait_for(call.wait_answered(), 10)
        assert call.negotiated is not None
        assert call.negotiated.codec_name == codec
        talk = speech(1.6)
        send_pcm(call, talk)
        await asyncio.sleep(2.2)
        call.hangup()
        await asyncio.wait_for(call.wait_ended(), 10)
        assert await peer.finished() == 0, peer.errors()
    assert call.state is CallState.ended
    assert call.cause is CallCause.local_hangup
    # The echo is what we sent, delayed; PCMA/PCMU each quantise a little.
    correlation, lag = peers.best_correlation(samples(talk), samples(capture.received))
    assert correlation >= 0.9, (correlation, lag)
    assert call.statistics.packets_received > 50


async def test_busy_callee_fails_the_call_with_cause_busy(phone: Phone, tmp_path: Path) -> None:
    async with peers.sipp("busy", tmp_path) as peer:
        call = await phone.call(account_for(peer), "busy")
        assert not await asyncio.wait_for(call.wait_answered(), 10)
        assert await peer.finished() == 0, peer.errors()
    assert (call.state, call.cause, call.sip_code) == (CallState.failed, CallCause.busy, 486)
    assert call.talk_seconds == 0


async def test_declined_call_has_cause_declined(phone: Phone, tmp_path: Path) -> None:
    async with peers.sipp("decline", tmp_path) as peer:
        call = await phone.call(account_for(peer), "decline")
        assert not await asyncio.wait_for(call.wait_answered(), 10)
        assert await peer.finished() == 0, peer.errors()
    assert (call.state, call.cause, call.sip_code) == (CallState.failed, CallCause.declined, 603)


async def test_hanging_up_a_ringing_call_cancels_it(phone: Phone, tmp_path: Path) -> None:
    async with peers.sipp("ring_no_answer", tmp_path) as peer:
        call = await phone.call(account_for(peer), "nobody")
        progress = await wait_for(call, CallProgress)
        assert isinstance(progress, CallProgress)
        assert progress.status_code == 180
        assert call.state is CallState.ringing
        call.hangup()
        await asyncio.wait_for(call.wait_ended(), 10)
        # SIPp passes only if it got our CANCEL and then the ACK for its 487.
        assert await peer.finished() == 0, peer.errors()
    assert (call.state, call.cause, call.sip_code) == (CallState.failed, CallCause.cancelled, 487)
    assert len(peer.received_requests("CANCEL")) == 1


async def test_ring_timeout_cancels_with_cause_no_answer(phone: Phone, tmp_path: Path) -> None:
    async with peers.sipp("ring_no_answer", tmp_path) as peer:
        call = await phone.call(account_for(peer, ring_timeout=1.0), "nobody")
        await asyncio.wait_for(call.wait_ended(), 10)
        assert await peer.finished() == 0, peer.errors()
    assert call.state is CallState.failed
    assert call.cause is CallCause.no_answer


async def test_early_media_is_heard_before_the_answer(phone: Phone, tmp_path: Path) -> None:
    peers.write_rtp_pcap(tmp_path / "announcement.pcap", peers.tone_packets(1000, 1.0))
    async with peers.sipp("early_media", tmp_path) as peer:
        call = await phone.call(account_for(peer), "announcement")
        capture = Capture(call)
        states = []
        async with asyncio.timeout(10):
            async for _event in call.events():
                states.append(call.state)
                if call.state is CallState.answered:
                    break
        await asyncio.sleep(0.3)
        call.hangup()
        await asyncio.wait_for(call.wait_ended(), 10)
        assert await peer.finished() == 0, peer.errors()
    assert states[:3] == [CallState.ringing, CallState.early_media, CallState.answered]
    before_answer = samples(capture.received_before_answer)
    assert before_answer.size >= 8000 * 0.6  # most of the one-second announcement
    assert peers.tone_fraction(before_answer, 1000) > 0.8


@pytest.mark.parametrize("scenario", ["auth_401", "auth_407"])
async def test_invite_challenge_is_answered_with_credentials(
    phone: Phone, tmp_path: Path, scenario: str
) -> None:
    async with peers.sipp(scenario, tmp_path) as peer:
        call = await phone.call(account_for(peer), "secret-service")
        assert await asyncio.wait_for(call.wait_answered(), 10)
        call.hangup()
        await asyncio.wait_for(call.wait_ended(), 10)
        assert await peer.finished() == 0, peer.errors()
    invites = peer.received_requests("INVITE")
    assert len(invites) == 2
    if scenario == "auth_407":
        # SIPp cannot verify Proxy-Authorization: check the digest here (RFC 2617, qop=auth).
        header = re.search(r"^Proxy-Authorization: Digest (.*)$", invites[1], re.MULTILINE)
        assert header is not None
        fields = dict(re.findall(r'(\w+)="?([^",]*)"?', header.group(1)))
        method_uri = f"INVITE:{fields['uri']}"
        ha1 = hashlib.md5(f"alice:{fields['realm']}:wonderland".encode()).hexdigest()  # noqa: S324
        ha2 = hashlib.md5(method_uri.encode()).hexdigest()  # noqa: S324
        expected = hashlib.md5(  # noqa: S324
            f"{ha1}:{fields['nonce']}:{fields['nc']}:{fields['cnonce']}:auth:{ha2}".encode()
        ).hexdigest()
        assert fields["realm"] == "sipp.test"
        assert fields["response"] == expected


async def test_wrong_password_ends_with_auth_failed(phone: Phone, tmp_path: Path) -> None:
    async with peers.sipp("auth_401", tmp_path) as peer:
        call = await phone.call(account_for(peer, password="not-the-password"), "secret")
        assert not await asyncio.wait_for(call.wait_answered(), 10)
        await peer.stop()
    assert call.state is CallState.failed
    assert call.cause is CallCause.auth_failed
    assert call.sip_code == 401
    # One retry with credentials, then we give up: no loop of INVITEs.
    assert len(peer.received_requests("INVITE")) == 2


async def test_far_end_hangup_ends_the_call(phone: Phone, tmp_path: Path) -> None:
    async with peers.sipp("far_end_bye", tmp_path) as peer:
        call = await phone.call(account_for(peer), "short")
        assert await asyncio.wait_for(call.wait_answered(), 10)
        await asyncio.wait_for(call.wait_ended(), 10)
        assert await peer.finished() == 0, peer.errors()
    assert (call.state, call.cause, call.hung_up_by) == (
        CallState.ended,
        CallCause.remote_hangup,
        "remote",
    )
    assert call.talk_seconds > 0


async def test_far_end_hold_and_resume(phone: Phone, tmp_path: Path) -> None:
    async with peers.sipp("hold_unhold", tmp_path) as peer:
        call = await phone.call(account_for(peer), "hold")
        assert await asyncio.wait_for(call.wait_answered(), 10)
        holds = []
        async with asyncio.timeout(10):
            async for event in call.events():
                if isinstance(event, CallMediaChanged):
                    holds.append((call.on_hold, call.audio.on_hold))
                    if len(holds) == 2:
                        break
        sent_after_resume = call.statistics.packets_sent
        await asyncio.sleep(0.3)
        assert call.statistics.packets_sent > sent_after_resume
        call.hangup()
        await asyncio.wait_for(call.wait_ended(), 10)
        # SIPp checked that we answered the hold with recvonly/inactive and the resume sendrecv.
        assert await peer.finished() == 0, peer.errors()
    assert holds == [(True, True), (False, False)]


async def test_retransmitted_200_is_acknowledged_every_time(phone: Phone, tmp_path: Path) -> None:
    async with peers.sipp("retransmit_200", tmp_path, extra_arguments=["-nr"]) as peer:
        call = await phone.call(account_for(peer), "lossy")
        assert await asyncio.wait_for(call.wait_answered(), 10)
        # The scenario waits for an ACK after each of its three 200 OKs before taking the BYE.
        await asyncio.sleep(1.0)
        call.hangup()
        await asyncio.wait_for(call.wait_ended(), 10)
        assert await peer.finished() == 0, peer.errors()
    assert len(peer.received_requests("ACK")) == 3
    assert call.cause is CallCause.local_hangup


async def test_rfc4733_digits_from_the_far_end(phone: Phone, tmp_path: Path) -> None:
    peers.write_rtp_pcap(tmp_path / "dtmf.pcap", peers.dtmf_packets("15#"))
    async with peers.sipp("dtmf", tmp_path) as peer:
        call = await phone.call(account_for(peer), "ivr")
        assert await asyncio.wait_for(call.wait_answered(), 10)
        digits = []
        async with asyncio.timeout(10):
            async for event in call.events():
                if isinstance(event, DtmfReceived):
                    digits.append(event.digit)
                    if len(digits) == 3:
                        break
        call.hangup()
        await asyncio.wait_for(call.wait_ended(), 10)
        assert await peer.finished() == 0, peer.errors()
    assert digits == ["1", "5", "#"]
    assert call.dtmf_received == ["1", "5", "#"]


async def test_silent_far_end_is_hung_up_for_media_timeout(phone: Phone, tmp_path: Path) -> None:
    async with peers.sipp("answer_echo", tmp_path) as peer:  # no -rtp_echo: no RTP at all
        call = await phone.call(account_for(peer, media_timeout=1.0), "silent")
        assert await asyncio.wait_for(call.wait_answered(), 10)
        await asyncio.wait_for(call.wait_ended(), 10)
        assert await peer.finished() == 0, peer.errors()
    assert call.state is CallState.ended
    assert call.cause is CallCause.media_timeout
    assert call.talk_seconds > 0


async def test_call_over_tcp_keeps_one_connection(phone: Phone, tmp_path: Path) -> None:
    async with peers.sipp("auth_401", tmp_path, rtp_echo=True, transport="tcp") as peer:
        call = await phone.call(account_for(peer, transport="tcp"), "over-tcp")
        assert await asyncio.wait_for(call.wait_answered(), 10)
        await asyncio.sleep(0.3)
        call.hangup()
        await asyncio.wait_for(call.wait_ended(), 10)
        assert await peer.finished() == 0, peer.errors()
    # INVITE, ACK (of the 401), INVITE with credentials, ACK and BYE on one TCP connection.
    assert phone.endpoint.transports.statistics.connections_opened == 1
    assert "Via: SIP/2.0/TCP" in peer.received_requests("BYE")[0]
    assert call.statistics.packets_received > 0

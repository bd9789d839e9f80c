"""Kamailio as registrar and proxy (digest auth from db_text): register, refresh, calls routed
to a SIPp callee and to a registered baresip, and what a wrong password does."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest

from sip.account import Account
from sip.causes import CallCause
from sip.phone import CallState, Phone, PhoneConfig
from sip.testline import load_prompt
from tests.sip import peers

pytestmark = pytest.mark.peers

USERS = [peers.SipUser("alice", "wonderland"), peers.SipUser("bob", "builder")]


@pytest.fixture
async def phone() -> AsyncIterator[Phone]:
    phone = await Phone.start(PhoneConfig(bind_host="127.0.0.1"))
    yield phone
    await phone.aclose()


def alice(proxy: peers.KamailioPeer, password: str = USERS[0].password, **settings: Any) -> Account:
    account = Account(
        name="alice",
        host=peers.LOOPBACK,
        port=proxy.port,
        username="alice",
        password=password,
        register_expires=4,
    )
    return dataclasses.replace(account, **settings)


def requests_seen(proxy: peers.KamailioPeer, method: str) -> int:
    return proxy.log().count(f"REQUEST {method} ")


async def test_register_and_refresh(phone: Phone, tmp_path: Path) -> None:
    async with peers.kamailio(tmp_path, USERS) as proxy:
        account = alice(proxy)
        registration = await asyncio.wait_for(phone.register(account), 10)
        assert registration.registered
        assert registration.expires == 4
        # Refreshed before the 4 s binding runs out, each time through a fresh challenge.
        await asyncio.wait_for(registration.wait_for(successes=2), 10)
        assert registration.registered
        assert requests_seen(proxy, "REGISTER") >= 4
        assert "CHALLENGE REGISTER sip:alice@" in proxy.log()
        successes = registration.successes
        phone.unregister(account)
        await asyncio.wait_for(registration.wait_for(successes=successes + 1), 10)
        assert not registration.registered
        assert registration.expires == 0


async def test_wrong_password_fails_registration_once(phone: Phone, tmp_path: Path) -> None:
    async with peers.kamailio(tmp_path, USERS) as proxy:
        registration = await asyncio.wait_for(phone.register(alice(proxy, "guess")), 10)
        assert not registration.registered
        assert registration.cause is CallCause.auth_failed
        assert registration.status_code == 401
        await asyncio.sleep(1.0)  # a looping client would have sent many more by now
        assert requests_seen(proxy, "REGISTER") == 2


@pytest.mark.parametrize("challenge", ["www", "proxy"])
async def test_call_through_proxy_to_sipp_callee(
    phone: Phone, tmp_path: Path, challenge: Literal["www", "proxy"]
) -> None:
    async with (
        peers.kamailio(tmp_path / "kamailio", USERS, challenge=challenge) as proxy,
        peers.sipp("proxied_callee", tmp_path / "sipp", rtp_echo=True) as callee,
    ):
        account = alice(proxy, register=False)
        call = await phone.call(account, f"sipp-{callee.sip_port}")
        assert await asyncio.wait_for(call.wait_answered(), 10)
        await asyncio.sleep(0.5)
        call.hangup()
        await asyncio.wait_for(call.wait_ended(), 10)
        assert await callee.finished() == 0, callee.errors()
        log = proxy.log()
    code = "407" if challenge == "proxy" else "401"
    assert f"CHALLENGE INVITE {code}" in log
    assert requests_seen(proxy, "INVITE") == 2
    # The BYE followed the Record-Route through Kamailio.
    assert requests_seen(proxy, "BYE") == 1
    assert call.state is CallState.ended
    assert call.statistics.packets_received > 10


@pytest.mark.parametrize("challenge", ["www", "proxy"])
async def test_wrong_password_on_invite_is_auth_failed_once(
    phone: Phone, tmp_path: Path, challenge: Literal["www", "proxy"]
) -> None:
    async with peers.kamailio(tmp_path, USERS, challenge=challenge) as proxy:
        account = alice(proxy, "guess", register=False)
        call = await phone.call(account, "sipp-9")
        assert not await asyncio.wait_for(call.wait_answered(), 10)
        await asyncio.sleep(0.5)
        assert requests_seen(proxy, "INVITE") == 2
    assert call.state is CallState.failed
    assert call.cause is CallCause.auth_failed
    assert call.sip_code == (407 if challenge == "proxy" else 401)


async def test_call_to_registered_baresip_hears_its_wav(phone: Phone, tmp_path: Path) -> None:
    wav = tmp_path / "prompt.wav"
    prompt = peers.pcm_to_samples(load_prompt())
    peers.write_wav(wav, prompt)
    async with peers.kamailio(tmp_path / "kamailio", USERS) as proxy:
        bob = await peers.start_baresip(
            tmp_path / "baresip",
            wav,
            username="bob",
            registrar=(peers.LOOPBACK, proxy.port),
            password="builder",
        )
        try:
            await peers.wait_for_log(bob.log, "200 OK", seconds=10)
            call = await phone.call(alice(proxy, register=False), "bob")
            received = bytearray()
            call.audio.add_tap(
                lambda direction, frame, _ts: (
                    received.extend(frame) if direction == "received" else None
                )
            )
            assert await asyncio.wait_for(call.wait_answered(), 10)
            await asyncio.wait_for(call.wait_ended(), 15)  # baresip hangs up when its WAV ends
        finally:
            await bob.stop()
    assert call.cause is CallCause.remote_hangup
    heard = peers.pcm_to_samples(bytes(received))
    correlation, _ = peers.best_correlation(peers.g711_ulaw_round_trip(prompt), heard)
    assert correlation >= 0.9
    assert np.abs(heard).max() > 1000

"""SIP over TLS verifies the server: a certificate from our CA works, an unknown one does not."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sip.causes import CallCause
from sip.phone import CallState, Phone, PhoneConfig
from sip.testline import TestLine
from tests.sip import peers


@pytest.fixture
def certificates(tmp_path: Path) -> peers.Certificates:
    return peers.make_certificates(tmp_path / "tls")


@pytest.fixture
async def tls_line(certificates: peers.Certificates) -> AsyncIterator[TestLine]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificates.certificate_file, certificates.key_file)
    line = await TestLine.start(tls_context=context)
    yield line
    await line.aclose()


@pytest.fixture
async def phone() -> AsyncIterator[Phone]:
    phone = await Phone.start(PhoneConfig(bind_host="127.0.0.1"))
    yield phone
    await phone.aclose()


async def test_call_over_tls_with_a_trusted_certificate(
    tls_line: TestLine, phone: Phone, certificates: peers.Certificates
) -> None:
    account = tls_line.account(transport="tls", ca_file=str(certificates.ca_file))
    call = await phone.call(account, "echo")
    assert await asyncio.wait_for(call.wait_answered(), 10)
    await asyncio.sleep(0.3)
    call.hangup()
    await asyncio.wait_for(call.wait_ended(), 10)
    assert (call.state, call.cause) == (CallState.ended, CallCause.local_hangup)
    assert call.statistics.packets_received > 0
    # One connection carried INVITE, ACK and BYE.
    assert phone.endpoint.transports.statistics.connections_opened == 1


async def test_untrusted_certificate_fails_the_call(tls_line: TestLine, phone: Phone) -> None:
    account = tls_line.account(transport="tls")  # system CAs only: our test CA is unknown
    call = await phone.call(account, "echo")
    assert not await asyncio.wait_for(call.wait_answered(), 10)
    assert call.state is CallState.failed
    assert call.cause is CallCause.network_error
    assert tls_line.calls_answered == 0

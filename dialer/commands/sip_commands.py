"""``dialer sip register`` and ``dialer sip call TARGET``: the SIP stack from the command line.

The account comes from the configuration file (``--account NAME``; the file is
``--accounts FILE`` or the ``DIALER_SIP_ACCOUNTS`` environment variable, TOML as described in
``sip.config``) or from ``--server HOST[:PORT] --username U --password P [--transport T]``;
``--testline`` calls the built-in test line started in this process instead.

``call`` prints one JSON object when the call is over::

    {"state": "ended", "cause": "local_hangup", "sip_code": 200, "ring_seconds": 0.01,
     "talk_seconds": 3.0, "packets_sent": 150, "packets_received": 149, "packets_lost": 0}

Exit status: 0 when the call was answered (``register``: when registered), 1 otherwise, 2 for
bad configuration (the message names the setting).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import wave
from pathlib import Path
from typing import Any

from sip.account import Account
from sip.config import account_from_options, load_account
from sip.errors import AccountConfigError, DialPlanError, SipError

FRAME_SAMPLES = 160
FRAME_BYTES = FRAME_SAMPLES * 2
SAMPLE_RATE = 8000
DEFAULT_HANGUP_AFTER = 10.0
EXIT_ANSWERED = 0
EXIT_NOT_ANSWERED = 1
EXIT_CONFIGURATION = 2


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sip_parser = subparsers.add_parser("sip", help="register or place a call with the SIP stack")
    sip_commands = sip_parser.add_subparsers(dest="sip_command", required=True, metavar="ACTION")

    register_parser = sip_commands.add_parser("register", help="register an account once")
    _add_account_options(register_parser)
    register_parser.add_argument(
        "--timeout", type=float, default=15.0, help="seconds to wait for the registrar"
    )
    register_parser.set_defaults(handler=_register_command)

    call_parser = sip_commands.add_parser("call", help="call TARGET and report the outcome")
    call_parser.add_argument("target", help="number, user name or sip: URI to call")
    _add_account_options(call_parser)
    call_parser.add_argument("--play", type=Path, help="WAV file to send once answered")
    call_parser.add_argument(
        "--record", type=Path, help="stereo WAV to write: left = sent, right = received"
    )
    call_parser.add_argument("--dtmf", default="", help="DTMF digits to send once answered")
    call_parser.add_argument(
        "--hangup-after",
        type=float,
        help="hang up this many seconds after the answer (default: when --play ends, else 10)",
    )
    call_parser.add_argument(
        "--ring-timeout", type=float, help="give up after this many seconds of ringing"
    )
    call_parser.set_defaults(handler=_call_command)


def _add_account_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--account", help="account name in the accounts file")
    parser.add_argument(
        "--accounts",
        type=Path,
        help="accounts TOML file (default: $DIALER_SIP_ACCOUNTS)",
    )
    parser.add_argument("--server", help="HOST[:PORT] of the SIP server (instead of --account)")
    parser.add_argument("--username", default="", help="SIP user name (with --server)")
    parser.add_argument("--password", default="", help="SIP password (with --server)")
    parser.add_argument(
        "--transport", default="udp", choices=("udp", "tcp", "tls"), help="default udp"
    )
    parser.add_argument(
        "--testline", action="store_true", help="call the built-in test line (no account needed)"
    )
    parser.add_argument("--bind", default="0.0.0.0", help="local address to bind (default all)")


def _error(message: str) -> int:
    print(f"dialer sip: configuration error: {message}", file=sys.stderr)
    return EXIT_CONFIGURATION


def _account_from_arguments(arguments: argparse.Namespace) -> Account:
    if arguments.account:
        if arguments.server:
            raise AccountConfigError("server", "give either --account or --server, not both")
        source = arguments.accounts or os.environ.get("DIALER_SIP_ACCOUNTS")
        if not source:
            raise AccountConfigError(
                "accounts", "--account needs --accounts FILE or DIALER_SIP_ACCOUNTS"
            )
        return load_account(Path(source), arguments.account)
    if arguments.server:
        return account_from_options(
            server=arguments.server,
            username=arguments.username,
            password=arguments.password,
            transport=arguments.transport,
        )
    raise AccountConfigError("account", "give --account NAME, --server HOST[:PORT] or --testline")


def _local_host_for(account: Account, bind: str) -> str:
    """The address to bind: loopback for a loopback server, else what --bind says."""
    if bind != "0.0.0.0":
        return bind
    if account.host in ("127.0.0.1", "localhost"):
        return "127.0.0.1"
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((account.host, account.port))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


# -- register -------------------------------------------------------------------------------------


def _register_command(arguments: argparse.Namespace) -> int:
    try:
        account = _account_from_arguments(arguments)
    except AccountConfigError as error:
        return _error(str(error))
    return asyncio.run(_register(account, arguments))


async def _register(account: Account, arguments: argparse.Namespace) -> int:
    from sip.phone import Phone, PhoneConfig

    phone = await Phone.start(PhoneConfig(bind_host=_local_host_for(account, arguments.bind)))
    try:
        try:
            registration = await asyncio.wait_for(phone.register(account), arguments.timeout)
        except TimeoutError:
            print(json.dumps({"registered": False, "cause": "timeout", "sip_code": None}))
            return EXIT_NOT_ANSWERED
        print(
            json.dumps(
                {
                    "registered": registration.registered,
                    "expires": registration.expires,
                    "cause": registration.cause.value if registration.cause else None,
                    "sip_code": registration.status_code or None,
                    "reason": registration.reason,
                }
            )
        )
        return EXIT_ANSWERED if registration.registered else EXIT_NOT_ANSWERED
    finally:
        await phone.aclose()


# -- call -----------------------------------------------------------------------------------------


def _call_command(arguments: argparse.Namespace) -> int:
    account: Account | None = None
    if not arguments.testline:
        try:
            account = _account_from_arguments(arguments)
        except AccountConfigError as error:
            return _error(str(error))
    play: bytes | None = None
    if arguments.play is not None:
        try:
            play = read_wav_as_pcm(arguments.play)
        except (OSError, wave.Error, ValueError) as error:
            return _error(f"play: {arguments.play}: {error}")
    if arguments.hangup_after is not None and arguments.hangup_after <= 0:
        return _error("hangup-after: must be a positive number of seconds")
    try:
        return asyncio.run(_call(account, arguments, play))
    except (DialPlanError, AccountConfigError) as error:
        return _error(f"target: {error}")


async def _call(account: Account | None, arguments: argparse.Namespace, play: bytes | None) -> int:
    from dataclasses import replace

    from sip.phone import Phone, PhoneConfig
    from sip.testline import TestLine

    test_line: TestLine | None = None
    if account is None:
        test_line = await TestLine.start()
        account = test_line.account()
    if arguments.ring_timeout:
        account = replace(account, ring_timeout=arguments.ring_timeout)
    frames = _frames(play) if play else []
    phone = await Phone.start(
        PhoneConfig(
            bind_host=_local_host_for(account, arguments.bind),
            send_queue_frames=len(frames) + 50,
        )
    )
    recorder = StereoRecorder() if arguments.record else None
    try:
        try:
            call = await phone.call(account, arguments.target)
        except SipError as error:
            print(json.dumps({"state": "failed", "cause": "invalid_number", "error": str(error)}))
            return EXIT_NOT_ANSWERED
        if recorder is not None:
            call.audio.add_tap(recorder.tap)
        answered = await call.wait_answered()
        if answered:
            for frame in frames:
                call.audio.send(frame)
            if arguments.dtmf:
                try:
                    call.send_dtmf(arguments.dtmf)
                except SipError as error:
                    print(f"dialer sip: cannot send DTMF: {error}", file=sys.stderr)
            hangup_after = arguments.hangup_after
            if hangup_after is None:
                hangup_after = len(frames) * 0.02 + 0.5 if frames else DEFAULT_HANGUP_AFTER
            try:
                await asyncio.wait_for(call.wait_ended(), hangup_after)
            except TimeoutError:
                call.hangup()
        await call.wait_ended()
        statistics = call.statistics
        result: dict[str, Any] = {
            "state": call.state.value,
            "cause": call.cause.value if call.cause else None,
            "sip_code": call.sip_code,
            "ring_seconds": round(call.ring_seconds, 3),
            "talk_seconds": round(call.talk_seconds, 3),
            "packets_sent": statistics.packets_sent,
            "packets_received": statistics.packets_received,
            "packets_lost": statistics.packets_lost,
        }
        if recorder is not None:
            recorder.write(arguments.record)
        print(json.dumps(result))
        return EXIT_ANSWERED if answered else EXIT_NOT_ANSWERED
    finally:
        await phone.aclose()
        if test_line is not None:
            await test_line.aclose()


def _frames(pcm: bytes) -> list[bytes]:
    padded = pcm + bytes(-len(pcm) % FRAME_BYTES)
    return [padded[index : index + FRAME_BYTES] for index in range(0, len(padded), FRAME_BYTES)]


def read_wav_as_pcm(path: Path) -> bytes:
    """8 kHz mono 16-bit PCM from a WAV (stereo is mixed down, other rates resampled)."""
    import numpy as np

    with wave.open(str(path), "rb") as reader:
        if reader.getsampwidth() != 2:
            raise ValueError("only 16-bit PCM WAV files can be played")
        channels = reader.getnchannels()
        rate = reader.getframerate()
        data = reader.readframes(reader.getnframes())
    samples = np.frombuffer(data, dtype="<i2").astype(np.float64)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    if rate != SAMPLE_RATE and samples.size:
        duration = samples.size / rate
        target = np.arange(round(duration * SAMPLE_RATE)) / SAMPLE_RATE
        samples = np.interp(target, np.arange(samples.size) / rate, samples)
    pcm: bytes = np.clip(samples, -32768, 32767).astype("<i2").tobytes()
    return pcm


class StereoRecorder:
    """Both directions of a call placed side by side by media timestamp (left sent, right
    received), written as one stereo 8 kHz WAV."""

    def __init__(self) -> None:
        self._sent = bytearray()
        self._received = bytearray()

    def tap(self, direction: str, frame: bytes, media_timestamp: int) -> None:
        track = self._sent if direction == "sent" else self._received
        offset = media_timestamp * 2
        if len(track) < offset:
            track.extend(bytes(offset - len(track)))
        track[offset : offset + len(frame)] = frame

    def write(self, path: Path) -> None:
        import numpy as np

        length = max(len(self._sent), len(self._received))
        left = np.frombuffer(bytes(self._sent) + bytes(length - len(self._sent)), dtype="<i2")
        right = np.frombuffer(
            bytes(self._received) + bytes(length - len(self._received)), dtype="<i2"
        )
        stereo = np.empty(left.size * 2, dtype="<i2")
        stereo[0::2] = left
        stereo[1::2] = right
        with wave.open(str(path), "wb") as writer:
            writer.setnchannels(2)
            writer.setsampwidth(2)
            writer.setframerate(SAMPLE_RATE)
            writer.writeframes(stereo.tobytes())

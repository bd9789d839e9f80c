"""The built-in test line: a SIP callee on our own stack that anyone can call to check audio.

It answers every INVITE, plays a short spoken prompt (``sip/assets/prompt.wav``, generated
once with espeak-ng; 8 kHz mono 16-bit), then echoes the caller's audio back until the caller
hangs up (or ``max_call_seconds`` passes). Nothing registers: ``TestLine.account()`` is an
account pointing straight at it::

    line = await TestLine.start()                  # 127.0.0.1, free port
    call = await phone.call(line.account(), "echo")
    ...
    await line.aclose()
"""

from __future__ import annotations

import asyncio
import io
import logging
import ssl
import wave
from importlib import resources
from pathlib import Path

from sip.account import Account, Transport
from sip.errors import SipError, StreamClosedError
from sip.events import IncomingCall
from sip.media.codecs import FRAME_BYTES
from sip.phone import Call, Phone, PhoneConfig

logger = logging.getLogger(__name__)

DEFAULT_MAX_CALL_SECONDS = 600.0
SAMPLE_RATE = 8000


def load_prompt(path: Path | None = None) -> bytes:
    """16-bit little-endian 8 kHz mono PCM of the prompt WAV, padded to whole 20 ms frames."""
    source: str | io.BytesIO
    if path is None:
        source = io.BytesIO(resources.files("sip.assets").joinpath("prompt.wav").read_bytes())
    else:
        source = str(path)
    with wave.open(source, "rb") as reader:
        layout = (reader.getframerate(), reader.getnchannels(), reader.getsampwidth())
        if layout != (SAMPLE_RATE, 1, 2):
            raise ValueError("the prompt must be an 8 kHz mono 16-bit WAV")
        pcm = reader.readframes(reader.getnframes())
    remainder = len(pcm) % FRAME_BYTES
    if remainder:
        pcm += bytes(FRAME_BYTES - remainder)
    return pcm


def prompt_frames(pcm: bytes) -> list[bytes]:
    return [pcm[offset : offset + FRAME_BYTES] for offset in range(0, len(pcm), FRAME_BYTES)]


class TestLine:
    """A callee that plays the prompt, then echoes. Create with :meth:`start`."""

    __test__ = False  # not a pytest test class

    def __init__(self, phone: Phone, prompt: bytes, max_call_seconds: float) -> None:
        self.phone = phone
        self.prompt = prompt
        self.max_call_seconds = max_call_seconds
        self.calls_answered = 0
        self.answered_calls: list[Call] = []
        self._tasks: set[asyncio.Task[None]] = set()
        phone.incoming_call_handler = self._on_incoming

    @classmethod
    async def start(
        cls,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        prompt_wav: Path | None = None,
        rtp_port_range: tuple[int, int] = (40000, 44999),
        max_call_seconds: float = DEFAULT_MAX_CALL_SECONDS,
        tls_context: ssl.SSLContext | None = None,
    ) -> TestLine:
        """Listen on ``host:port`` (UDP and TCP; TLS too with ``tls_context``, on a free port)."""
        prompt = load_prompt(prompt_wav)
        frames = len(prompt) // FRAME_BYTES
        phone = await Phone.start(
            PhoneConfig(
                bind_host=host,
                sip_port=port,
                rtp_port_range=rtp_port_range,
                accept_calls=True,
                send_queue_frames=frames + 50,
                user_agent="dialer test line",
                tls_server_context=tls_context,
            )
        )
        return cls(phone, prompt, max_call_seconds)

    @property
    def host(self) -> str:
        return self.phone.config.bind_host

    @property
    def port(self) -> int:
        return self.phone.sip_port

    @property
    def prompt_seconds(self) -> float:
        return len(self.prompt) / (2 * SAMPLE_RATE)

    @property
    def tls_port(self) -> int:
        return self.phone.endpoint.transports.tls_port

    def account(
        self, name: str = "testline", transport: Transport = "udp", ca_file: str | None = None
    ) -> Account:
        """An account that calls this line directly (no registration, no password)."""
        return Account(
            name=name,
            host=self.host,
            port=self.tls_port if transport == "tls" else self.port,
            transport=transport,
            ca_file=ca_file,
            username="caller",
            register=False,
            media_timeout=30.0,
        )

    def _on_incoming(self, incoming: IncomingCall) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(incoming))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, incoming: IncomingCall) -> None:
        try:
            call = await self.phone.answer(incoming)
        except SipError as error:
            logger.info("test line refused a call: %s", error)
            return
        self.calls_answered += 1
        self.answered_calls.append(call)
        loop = asyncio.get_running_loop()
        for frame in prompt_frames(self.prompt):
            call.audio.send(frame)
        echo_from = loop.time() + self.prompt_seconds
        try:
            async with asyncio.timeout(self.max_call_seconds):
                await self._echo(call, echo_from)
        except TimeoutError:
            call.hangup()

    async def _echo(self, call: Call, echo_from: float) -> None:
        loop = asyncio.get_running_loop()
        async for frame in call.audio.frames():
            if call.is_ended:
                break
            if loop.time() >= echo_from:
                try:
                    call.audio.send(frame)
                except StreamClosedError:
                    break

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.phone.aclose()

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self.phone.close()

"""The public telephone API the rest of the product uses: :class:`Phone` and :class:`Call`.

::

    phone = await Phone.start(PhoneConfig(bind_host="127.0.0.1"))
    registration = await phone.register(account)          # optional (trunks don't register)
    call = await phone.call(account, "+4930123456")       # dial plan of the account applies
    if await call.wait_answered():
        call.audio.send(frame)                            # 320-byte 20 ms PCM frames
        async for frame in call.audio.frames(): ...
        call.send_dtmf("1#")
        call.hangup()
    await call.wait_ended()
    print(call.state, call.cause, call.sip_code, call.talk_seconds)
    await phone.aclose()                                  # or phone.close() without waiting

A call's :attr:`Call.audio` is the RTP stream (:class:`sip.media.stream.AudioStream`); it is
pointed at the far end as soon as a session description arrives, including a 183 with SDP
(early media: ringback tones and announcements are received and tapped before the answer).
An answered call with no RTP for ``account.media_timeout`` seconds is hung up with cause
``media_timeout`` (not while the far end holds the call).

One :class:`Phone` holds one SIP endpoint (UDP and TCP on ``sip_port``), one media clock for all
its streams and an RTP port allocator for ``rtp_port_range``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from sip.account import Account
from sip.causes import CallCause
from sip.dialplan import target_uri
from sip.endpoint import Endpoint, EndpointSettings
from sip.errors import SdpError, SipError
from sip.events import (
    CallAnswered,
    CallEnded,
    CallMediaChanged,
    CallProgress,
    DtmfInfoReceived,
    Event,
    IncomingCall,
    RegistrationFailed,
    RegistrationSucceeded,
)
from sip.media.clock import MediaClock
from sip.media.dtmf import DtmfDigit
from sip.media.ports import PortAllocator
from sip.media.stream import AudioStream, StreamStatistics
from sip.ratelimit import RateLimit
from sip.sdp import NegotiatedMedia, build_answer, build_offer, negotiate
from sip.timers import TimerSettings

logger = logging.getLogger(__name__)

MEDIA_CHECK_INTERVAL = 0.5


class CallState(StrEnum):
    """Where a call is. ``failed``: ended without being answered; ``ended``: after an answer."""

    dialing = "dialing"
    ringing = "ringing"
    early_media = "early_media"
    answered = "answered"
    ended = "ended"
    failed = "failed"


@dataclass(frozen=True)
class PhoneConfig:
    """Where a phone listens. ``advertised_host`` goes into SDP (defaults to ``bind_host``).

    With ``tls_server_context`` the phone also accepts SIP over TLS on ``tls_port`` (0: free).
    ``send_queue_frames`` bounds the audio queued with ``Call.audio.send`` (20 ms each).
    ``media_phase`` places the media clock's ticks (see ``MediaClock``; None: from the first
    call on).
    """

    bind_host: str = "127.0.0.1"
    sip_port: int = 0
    rtp_port_range: tuple[int, int] = (16384, 32767)
    advertised_host: str | None = None
    tcp: bool = True
    accept_calls: bool = False
    rate_limit: RateLimit | None = None
    timer_settings: TimerSettings | None = None
    user_agent: str = "dialer"
    jitter_depth_frames: int = 2
    send_queue_frames: int = 50
    tls_server_context: ssl.SSLContext | None = None
    tls_port: int = 0
    media_phase: float | None = None


@dataclass(frozen=True)
class DtmfReceived:
    """A digit the far end sent (RFC 4733 in RTP, or SIP INFO)."""

    digit: str
    duration_seconds: float | None
    via: Literal["rtp", "info"]


CallEvent = CallProgress | CallAnswered | CallMediaChanged | CallEnded | DtmfReceived


@dataclass
class Registration:
    """The state of one account's registration (kept up to date while the phone runs)."""

    account_name: str
    registered: bool = False
    expires: int = 0
    cause: CallCause | None = None
    status_code: int = 0
    reason: str = ""
    successes: int = 0
    failures: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def _update(self, event: RegistrationSucceeded | RegistrationFailed) -> None:
        if isinstance(event, RegistrationSucceeded):
            self.registered = event.expires > 0
            self.expires = event.expires
            self.cause = None
            self.status_code = 200
            self.reason = "OK"
            self.successes += 1
        else:
            self.registered = False
            self.cause = event.cause
            self.status_code = event.status_code
            self.reason = event.reason
            self.failures += 1
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for(self, *, successes: int = 0, failures: int = 0) -> Registration:
        """Wait until at least ``successes`` successes or ``failures`` failures happened."""
        while not (
            (successes and self.successes >= successes) or (failures and self.failures >= failures)
        ):
            await self._changed.wait()
        return self


class Call:
    """One call (outbound from :meth:`Phone.call`, or inbound answered by :meth:`Phone.answer`)."""

    def __init__(
        self,
        phone: Phone,
        account: Account | None,
        target: str,
        audio: AudioStream,
        *,
        direction: Literal["outbound", "inbound"],
    ) -> None:
        self._phone = phone
        self._loop = asyncio.get_running_loop()
        self.account = account
        self.target = target
        self.direction = direction
        self.audio = audio
        self.key = ""
        self.state = CallState.dialing
        self.cause: CallCause | None = None
        self.sip_code: int | None = None
        self.reason = ""
        self.hung_up_by: str | None = None
        self.negotiated: NegotiatedMedia | None = None
        self.on_hold = False
        self.early_media = False
        self.dtmf_received: list[str] = []
        self.placed_at = self._loop.time()
        self.answered_at: float | None = None
        self._resumed_at: float | None = None
        self.ended_at: float | None = None
        self.started_wall_clock = time.time()
        self._history: list[CallEvent] = []
        self._new_event: asyncio.Future[None] = self._loop.create_future()
        self._answered: asyncio.Future[bool] = self._loop.create_future()
        self._ended: asyncio.Future[None] = self._loop.create_future()
        self._remove_dtmf_listener = audio.add_dtmf_listener(self._on_rtp_dtmf)
        self.media_timeout = account.media_timeout if account is not None else 30.0

    # -- reading the call -------------------------------------------------------------------------

    @property
    def ring_seconds(self) -> float:
        """From the INVITE to the answer (or to the end of an unanswered call, or now)."""
        until = self.answered_at or self.ended_at or self._loop.time()
        return max(0.0, until - self.placed_at)

    @property
    def talk_seconds(self) -> float:
        """From the answer to the end (or now); 0 for unanswered calls."""
        if self.answered_at is None:
            return 0.0
        return max(0.0, (self.ended_at or self._loop.time()) - self.answered_at)

    @property
    def statistics(self) -> StreamStatistics:
        return self.audio.statistics

    @property
    def is_ended(self) -> bool:
        return self._ended.done()

    async def events(self) -> AsyncIterator[CallEvent]:
        """Every event of the call from its start, ending after ``CallEnded``. Each iterator
        sees all of them, whenever it starts."""
        index = 0
        while True:
            while index < len(self._history):
                event = self._history[index]
                index += 1
                yield event
                if isinstance(event, CallEnded):
                    return
            await asyncio.shield(self._new_event)

    async def wait_answered(self) -> bool:
        """True once answered; False if the call ended without an answer."""
        return await asyncio.shield(self._answered)

    async def wait_ended(self) -> Call:
        await asyncio.shield(self._ended)
        return self

    # -- acting on the call -----------------------------------------------------------------------

    def hangup(self, cause: CallCause = CallCause.local_hangup) -> None:
        """BYE when answered, CANCEL before; ``CallEnded`` follows. Ignored once ended."""
        if self._ended.done() or not self.key:
            return
        self._phone.endpoint.hangup(self.key, cause)

    def send_dtmf(self, digits: str) -> None:
        """Send RFC 4733 telephone-events (when negotiated)."""
        self.audio.send_dtmf(digits)

    # -- event handling ---------------------------------------------------------------------------

    def _record(self, event: CallEvent) -> None:
        self._history.append(event)
        future, self._new_event = self._new_event, self._loop.create_future()
        future.set_result(None)

    def _apply_remote_sdp(self, remote_sdp: bytes | None) -> None:
        if not remote_sdp:
            return
        codecs = self.account.codecs if self.account is not None else ("PCMU", "PCMA")
        try:
            media = negotiate(remote_sdp, codecs)
        except SdpError as error:
            logger.warning("call %s: unusable remote SDP: %s", self.key, error)
            return
        self.negotiated = media
        if self.audio.closed:
            return
        try:
            self.audio.set_remote(
                media.address, media.port, media.payload_type, media.telephone_event_payload
            )
        except ValueError as error:
            logger.warning("call %s: cannot send media there: %s", self.key, error)
            return
        if self.on_hold and not media.on_hold:
            self._resumed_at = self._loop.time()  # silence during the hold does not count
        self.on_hold = media.on_hold
        self.audio.set_hold(not media.we_send)

    def on_event(self, event: Event) -> None:
        if isinstance(event, CallProgress):
            if self.state in (CallState.dialing, CallState.ringing):
                self.state = CallState.ringing
            if event.remote_sdp:
                self.early_media = True
                self.state = CallState.early_media
                self._apply_remote_sdp(event.remote_sdp)
            self._record(event)
        elif isinstance(event, CallAnswered):
            self.state = CallState.answered
            self.answered_at = self._loop.time()
            self.sip_code = 200
            self.reason = "OK"
            self._apply_remote_sdp(event.remote_sdp)
            self._phone._watch_media(self)
            self._record(event)
            if not self._answered.done():
                self._answered.set_result(True)
        elif isinstance(event, CallMediaChanged):
            self._apply_remote_sdp(event.remote_sdp)
            self._record(event)
        elif isinstance(event, DtmfInfoReceived):
            self._on_digit(
                DtmfReceived(
                    event.digit,
                    event.duration_ms / 1000 if event.duration_ms is not None else None,
                    "info",
                )
            )
        elif isinstance(event, CallEnded):
            self._end(event)

    def _on_rtp_dtmf(self, digit: DtmfDigit) -> None:
        if not self._ended.done():
            self._on_digit(DtmfReceived(digit.digit, digit.duration_seconds, "rtp"))

    def _on_digit(self, received: DtmfReceived) -> None:
        self.dtmf_received.append(received.digit)
        self._record(received)

    def _end(self, event: CallEnded) -> None:
        if self._ended.done():
            return
        self.ended_at = self._loop.time()
        answered = self.answered_at is not None
        self.state = CallState.ended if answered else CallState.failed
        self.cause = event.cause
        if event.status_code:
            self.sip_code = event.status_code
        elif not answered:
            self.sip_code = None
        self.reason = event.reason or self.reason
        self.hung_up_by = event.hung_up_by
        self._remove_dtmf_listener()
        self._record(event)
        if not self._answered.done():
            self._answered.set_result(False)
        self._ended.set_result(None)
        self._phone._forget(self)
        # Let the last frames reach the taps and frames() consumers, then free the port.
        self._loop.call_later(0.1, self.audio.close)

    def _media_silent(self, now: float) -> bool:
        """True when an answered, not held call got no RTP for ``media_timeout`` seconds."""
        if self._ended.done() or self.on_hold or self.media_timeout <= 0:
            return False
        idle = self.audio.media_idle_seconds(now)
        if self._resumed_at is not None:
            idle = min(idle, now - self._resumed_at)
        return idle >= self.media_timeout


IncomingCallHandler = Callable[[IncomingCall], None]


class Phone:
    """A SIP phone: one endpoint, one media clock, any number of calls. Use :meth:`start`."""

    def __init__(self, config: PhoneConfig, endpoint: Endpoint, clock: MediaClock) -> None:
        self.config = config
        self.endpoint = endpoint
        self.clock = clock
        self.ports = PortAllocator(*config.rtp_port_range)
        self.media_host = config.advertised_host or config.bind_host
        self.calls: dict[str, Call] = {}
        self.registrations: dict[str, Registration] = {}
        self._registered_accounts: dict[str, Account] = {}
        self.incoming_call_handler: IncomingCallHandler | None = None
        self.closed = False
        self._watched: dict[str, Call] = {}
        self._media_watch: asyncio.TimerHandle | None = None
        if config.accept_calls:
            endpoint.incoming_call_listener = self._on_incoming_call

    @classmethod
    async def start(cls, config: PhoneConfig | None = None) -> Phone:
        config = config or PhoneConfig()
        endpoint = await Endpoint.start(
            EndpointSettings(
                host=config.bind_host,
                port=config.sip_port,
                tcp=config.tcp,
                accept_calls=config.accept_calls,
                rate_limit=config.rate_limit,
                timer_settings=config.timer_settings,
                user_agent=config.user_agent,
                tls_server_context=config.tls_server_context,
                tls_port=config.tls_port,
            )
        )
        return cls(config, endpoint, MediaClock(phase=config.media_phase))

    @property
    def sip_port(self) -> int:
        return self.endpoint.port

    async def __aenter__(self) -> Phone:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    # -- registration -----------------------------------------------------------------------------

    async def register(self, account: Account) -> Registration:
        """Register ``account`` and wait for the first outcome; the registration is then kept
        (refreshed before it expires, retried after failures) until :meth:`unregister`."""
        registration = self.registrations.get(account.name)
        if not account.register:
            # An IP-authenticated trunk: nothing to send, nothing will ever come back.
            return registration or Registration(account.name, reason="register = false")
        if registration is None:
            registration = Registration(account.name)
            self.registrations[account.name] = registration
            self._registered_accounts[account.name] = account
            self.endpoint.register(account, registration._update)
        else:
            self.endpoint.register(account)
        before = registration.successes + registration.failures
        while registration.successes + registration.failures == before:
            await registration._changed.wait()
        return registration

    def unregister(self, account: Account) -> None:
        """Remove the binding (REGISTER with Expires: 0) and stop refreshing."""
        self._registered_accounts.pop(account.name, None)
        self.endpoint.unregister(account)

    # -- calls ------------------------------------------------------------------------------------

    async def _open_audio(self) -> AudioStream:
        return await AudioStream.open(
            self.clock,
            self.config.bind_host,
            self.ports,
            jitter_depth_frames=self.config.jitter_depth_frames,
            send_queue_frames=self.config.send_queue_frames,
        )

    async def call(self, account: Account, target: str) -> Call:
        """Dial ``target`` (a number, a user or a SIP URI) on ``account``; returns at once
        with the call in state ``dialing``. ``DialPlanError`` for a target we cannot dial."""
        if self.closed:
            raise SipError("the phone is closed")
        uri = target_uri(account, target)
        audio = await self._open_audio()
        offer = build_offer(self.media_host, audio.local_port, account.codecs)
        call = Call(self, account, target, audio, direction="outbound")
        try:
            call.key = self.endpoint.place_call(account, uri, offer, call.on_event)
        except SipError:
            audio.close()
            raise
        self.calls[call.key] = call
        return call

    async def answer(self, incoming: IncomingCall, account: Account | None = None) -> Call:
        """Answer an incoming call (phones started with ``accept_calls=True``)."""
        audio = await self._open_audio()
        call = Call(self, account, incoming.request.uri, audio, direction="inbound")
        call.key = incoming.call_key
        codecs = account.codecs if account is not None else ("PCMU", "PCMA")
        if incoming.remote_sdp is None:
            audio.close()
            self.endpoint.reject(incoming.call_key, 488, "Offer required")
            raise SdpError("late-offer INVITE is not supported")
        try:
            answer_sdp = build_answer(
                incoming.remote_sdp, self.media_host, audio.local_port, codecs
            )
        except SdpError:
            audio.close()
            self.endpoint.reject(incoming.call_key, 488)
            raise
        call._apply_remote_sdp(incoming.remote_sdp)
        self.calls[call.key] = call
        self.endpoint.listen_call(call.key, call.on_event)
        self.endpoint.answer(call.key, answer_sdp)
        return call

    def reject(self, incoming: IncomingCall, status_code: int = 486) -> None:
        self.endpoint.reject(incoming.call_key, status_code)

    def _on_incoming_call(self, incoming: IncomingCall) -> None:
        if self.incoming_call_handler is None:
            self.endpoint.reject(incoming.call_key, 480)
        else:
            self.incoming_call_handler(incoming)

    def _forget(self, call: Call) -> None:
        self.calls.pop(call.key, None)
        self._watched.pop(call.key, None)

    def _watch_media(self, call: Call) -> None:
        """Check the call for RTP silence (one timer for all calls of the phone)."""
        self._watched[call.key] = call
        if self._media_watch is None and not self.closed:
            loop = asyncio.get_running_loop()
            self._media_watch = loop.call_later(MEDIA_CHECK_INTERVAL, self._check_media)

    def _check_media(self) -> None:
        self._media_watch = None
        if self.closed:
            return
        now = asyncio.get_running_loop().time()
        for call in list(self._watched.values()):
            if call._media_silent(now):
                logger.info("call %s: no RTP for %.1f s, hanging up", call.key, call.media_timeout)
                self._watched.pop(call.key, None)
                call.hangup(CallCause.media_timeout)
        if self._watched:
            self._media_watch = asyncio.get_running_loop().call_later(
                MEDIA_CHECK_INTERVAL, self._check_media
            )

    # -- closing ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Hang up every call (BYE/CANCEL sent now), close the media and the sockets."""
        if self.closed:
            return
        self.closed = True
        if self._media_watch is not None:
            self._media_watch.cancel()
            self._media_watch = None
        for call in list(self.calls.values()):
            call.hangup()
        for call in list(self.calls.values()):
            call.audio.close()
        self.endpoint.close()
        self.clock.close()

    async def aclose(self, grace: float = 2.0) -> None:
        """Hang up every call, unregister, and wait up to ``grace`` seconds for the far ends
        to confirm before closing."""
        if self.closed:
            return
        calls = list(self.calls.values())
        for call in calls:
            call.hangup()
        waiters: list[asyncio.Future[object]] = [
            asyncio.ensure_future(call.wait_ended()) for call in calls
        ]
        for account in list(self._registered_accounts.values()):
            registration = self.registrations[account.name]
            if registration.registered:
                self.unregister(account)
                waiters.append(
                    asyncio.ensure_future(
                        registration.wait_for(successes=registration.successes + 1)
                    )
                )
        if waiters:
            _, pending = await asyncio.wait(waiters, timeout=grace)
            for waiter in pending:
                waiter.cancel()
        self.close()
        await self.endpoint.wait_closed()

"""The one asyncio adapter around the sans-I/O :class:`sip.core.UserAgentCore`.

It does all the I/O the core asks for and nothing else:

* every datagram or framed stream message goes to ``core.receive(data, source, transport,
  now=loop.time())``; a delivery failure goes to ``core.transport_error``;
* after every call into the core, ``core.outgoing()`` is drained into the sockets
  (:class:`sip.transport.TransportSet`) and ``core.events()`` to the listeners; then, once per
  event-loop iteration (``call_soon``: a burst of datagrams read in one iteration asks the core
  for its next deadline once, not once per message), one ``loop.call_at(core.next_timer())`` is
  (re)armed to run ``core.handle_timers``.

Listeners are plain callbacks: one per call key (``place_call`` registers it before the INVITE
leaves), one list per account name for registration events, and one for incoming calls. They
may call back into the endpoint (a hangup from a ``CallEnded`` listener, an answer from an
``IncomingCall`` listener): calls made while events are being dispatched are queued behind the
current drain, never re-entered.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from sip.account import Account
from sip.causes import CallCause
from sip.core import LocalAddress, UserAgentCore
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
from sip.ratelimit import RateLimit
from sip.timers import TimerSettings
from sip.transport import Address, TransportSet, client_tls_context

logger = logging.getLogger(__name__)

CallListener = Callable[[Event], None]
RegistrationListener = Callable[[RegistrationSucceeded | RegistrationFailed], None]
IncomingCallListener = Callable[[IncomingCall], None]

_CALL_EVENTS = (CallProgress, CallAnswered, CallEnded, CallMediaChanged, DtmfInfoReceived)


@dataclass(frozen=True)
class EndpointSettings:
    """Where the endpoint listens and how its core behaves."""

    host: str = "127.0.0.1"
    port: int = 0
    tcp: bool = True
    accept_calls: bool = False
    rate_limit: RateLimit | None = None
    timer_settings: TimerSettings | None = None
    user_agent: str = "dialer"
    tls_server_context: ssl.SSLContext | None = None
    tls_port: int = 0


class Endpoint:
    """Sockets + core + timer; see the module docstring. Create with :meth:`start`."""

    def __init__(self, settings: EndpointSettings) -> None:
        self.settings = settings
        self._loop = asyncio.get_running_loop()
        self.transports = TransportSet(
            self._on_message, self._on_transport_error, tls_context_for=self._tls_context_for
        )
        self._core: UserAgentCore | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_deadline: float | None = None
        self._rearm: asyncio.Handle | None = None
        self._draining = False
        self._call_listeners: dict[str, CallListener] = {}
        self._registration_listeners: dict[str, list[RegistrationListener]] = {}
        self._tls_settings: dict[str, tuple[bool, str | None]] = {}
        self._tls_contexts: dict[tuple[bool, str | None], ssl.SSLContext] = {}
        self.incoming_call_listener: IncomingCallListener | None = None
        self.closed = False

    @classmethod
    async def start(cls, settings: EndpointSettings | None = None) -> Endpoint:
        endpoint = cls(settings or EndpointSettings())
        await endpoint._open()
        return endpoint

    async def _open(self) -> None:
        settings = self.settings
        await self.transports.open(
            settings.host,
            settings.port,
            tcp=settings.tcp,
            tls_server_context=settings.tls_server_context,
            tls_port=settings.tls_port,
        )
        extra: list[LocalAddress] = []
        if self.transports.tcp_port:
            extra.append(LocalAddress(settings.host, self.transports.tcp_port, "tcp"))
        if self.transports.tls_port:
            extra.append(LocalAddress(settings.host, self.transports.tls_port, "tls"))
        self._core = UserAgentCore(
            LocalAddress(settings.host, self.transports.udp_port, "udp"),
            extra_addresses=tuple(extra),
            timer_settings=settings.timer_settings,
            accept_calls=settings.accept_calls,
            rate_limit=settings.rate_limit,
            user_agent=settings.user_agent,
        )

    @property
    def core(self) -> UserAgentCore:
        if self._core is None:
            raise RuntimeError("endpoint not started")
        return self._core

    @property
    def host(self) -> str:
        return self.settings.host

    @property
    def port(self) -> int:
        return self.transports.udp_port

    def close(self) -> None:
        """Stop the timer and close every socket at once (nothing more is sent)."""
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._rearm is not None:
            self._rearm.cancel()
            self._rearm = None
        self.transports.close()

    async def wait_closed(self) -> None:
        await self.transports.wait_closed()

    # -- actions (each one drains the core afterwards) ------------------------------------------

    def use_account(self, account: Account) -> None:
        """Remember the TLS policy of ``account`` for connections to its server and proxy."""
        if account.transport != "tls":
            return
        policy = (account.tls_verify, account.ca_file)
        self._tls_settings[account.host] = policy
        if account.outbound_proxy:
            self._tls_settings[account.outbound_proxy.rsplit(":", 1)[0].strip("[]")] = policy

    def place_call(
        self, account: Account, target_uri: str, sdp_offer: bytes, listener: CallListener
    ) -> str:
        self.use_account(account)
        call_key = self.core.place_call(account, target_uri, sdp_offer, self._loop.time())
        self._call_listeners[call_key] = listener
        self._drain()
        return call_key

    def listen_call(self, call_key: str, listener: CallListener) -> None:
        """Receive the events of an incoming call (set before answering it)."""
        self._call_listeners[call_key] = listener

    def hangup(self, call_key: str, cause: CallCause = CallCause.local_hangup) -> None:
        self.core.hangup(call_key, self._loop.time(), cause)
        self._drain()

    def ring(self, call_key: str, early_sdp: bytes | None = None) -> None:
        self.core.ring(call_key, self._loop.time(), early_sdp)
        self._drain()

    def answer(self, call_key: str, sdp_answer: bytes) -> None:
        self.core.answer(call_key, sdp_answer, self._loop.time())
        self._drain()

    def reject(self, call_key: str, status_code: int, reason: str = "") -> None:
        self.core.reject(call_key, status_code, self._loop.time(), reason)
        self._drain()

    def register(self, account: Account, listener: RegistrationListener | None = None) -> None:
        self.use_account(account)
        if listener is not None:
            self._registration_listeners.setdefault(account.name, []).append(listener)
        self.core.register(account, self._loop.time())
        self._drain()

    def unregister(self, account: Account) -> None:
        self.core.unregister(account, self._loop.time())
        self._drain()

    def remove_registration_listener(self, account_name: str, listener: object) -> None:
        listeners = self._registration_listeners.get(account_name, [])
        if listener in listeners:
            listeners.remove(listener)

    # -- I/O callbacks ----------------------------------------------------------------------------

    def _on_message(self, data: bytes, source: Address, transport: str) -> None:
        if self._core is None or self.closed:
            return
        self._core.receive(data, source, transport, self._loop.time())
        self._drain()

    def _on_transport_error(self, destination: Address, transport: str) -> None:
        if self._core is None or self.closed:
            return
        self._core.transport_error(destination, transport, self._loop.time())
        self._drain()

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_deadline = None
        if self._core is None or self.closed:
            return
        self._core.handle_timers(self._loop.time())
        self._drain()

    def _tls_context_for(self, host: str, port: int) -> ssl.SSLContext:
        policy = self._tls_settings.get(host, (True, None))
        context = self._tls_contexts.get(policy)
        if context is None:
            context = client_tls_context(verify=policy[0], ca_file=policy[1])
            self._tls_contexts[policy] = context
        return context

    # -- the drain --------------------------------------------------------------------------------

    def _drain(self) -> None:
        if self._draining or self._core is None:
            return  # the running drain loops until the core has nothing left
        self._draining = True
        try:
            while True:
                outgoing = self._core.outgoing()
                for item in outgoing:
                    self.transports.send(item.data, item.destination, item.transport)
                events = self._core.events()
                for event in events:
                    self._dispatch(event)
                if not outgoing and not events:
                    break
        finally:
            self._draining = False
        if self._rearm is None and not self.closed:
            self._rearm = self._loop.call_soon(self._arm_timer)

    def _dispatch(self, event: Event) -> None:
        try:
            if isinstance(event, _CALL_EVENTS):
                listener = self._call_listeners.get(event.call_key)
                if isinstance(event, CallEnded):
                    self._call_listeners.pop(event.call_key, None)
                if listener is not None:
                    listener(event)
            elif isinstance(event, IncomingCall):
                if self.incoming_call_listener is None:
                    self.core.reject(event.call_key, 480, self._loop.time())
                else:
                    self.incoming_call_listener(event)
            elif isinstance(event, RegistrationSucceeded | RegistrationFailed):
                for registration_listener in list(
                    self._registration_listeners.get(event.account_name, [])
                ):
                    registration_listener(event)
        except Exception:  # a listener bug must not stop the SIP stack
            logger.exception("listener failed on %r", event)

    def _arm_timer(self) -> None:
        self._rearm = None
        if self._core is None or self.closed:
            return
        deadline = self._core.next_timer()
        if deadline == self._timer_deadline:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_deadline = deadline
        if deadline is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

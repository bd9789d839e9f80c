"""The sans-I/O SIP user agent core: places and receives calls, registers, answers the rest.

No sockets, no asyncio, no clock of its own. The adapter (``sip/adapter`` by B) does::

    core = UserAgentCore(LocalAddress("192.0.2.10", 5060, "udp"))
    key = core.place_call(account, "sip:+4930123@trunk.example", sdp_offer, now=loop.time())
    # whenever a datagram/stream message arrives:
    core.receive(data, source=(ip, port), transport="udp", now=loop.time())
    # after every call into the core:
    for item in core.outgoing(): send item.data to item.destination over item.transport
    for event in core.events(): react (CallAnswered, CallEnded ...)
    deadline = core.next_timer(); loop.call_at(deadline, lambda: core.handle_timers(loop.time()))

``Outgoing.destination`` may carry a host name (the Request-URI host, an outbound proxy, a
Route): the adapter resolves it. Over TCP/TLS the adapter reuses or opens a connection to that
destination; responses to requests received over a connection go back to the request's
``source``.

Re-INVITE/UPDATE answers: the core keeps the last session description it sent for each call
(the offer of ``place_call`` or the answer of ``answer``) and answers a remote offer with that
description, its ``a=`` direction set to match the offer (sendonly -> recvonly,
inactive -> inactive, recvonly -> sendonly, otherwise sendrecv) and its ``o=`` version
incremented; the adapter learns about the change from ``CallMediaChanged``.

Routing: a request goes to the account's outbound proxy when it has one (as a next hop only,
no Route header is added), else to the first Route of the dialog's route set, else to the
Request-URI host. Responses go back per RFC 3261 §18.2.2 / RFC 3581 (source address; source
port when ``rport`` was asked for, over UDP; the same connection over TCP/TLS).

Choices worth knowing: INVITE retransmissions (timer A) double without a cap as RFC 3261
§17.1.1.2 says; the INVITE server transaction keeps an Accepted state (RFC 6026) so INVITE
retransmissions after our 2xx are absorbed; we send an empty ``Supported`` header (we
implement no option tag) and answer any ``Require`` with 420.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from sip.account import Account
from sip.calls import Call, CallState, RepeatedAnswer, answer_remote_offer
from sip.causes import CallCause, cause_for_status
from sip.dialog import Dialog, DialogKey, dialog_key_of_request, dialog_key_of_response
from sip.digest import Challenge, build_authorization, choose_challenge
from sip.errors import DigestError, LocalProtocolError, MessageParseError, RemoteProtocolError
from sip.events import (
    CallAnswered,
    CallEnded,
    CallMediaChanged,
    CallProgress,
    DtmfInfoReceived,
    Event,
    HungUpBy,
    IncomingCall,
    RegistrationFailed,
    RegistrationSucceeded,
)
from sip.identifiers import IdentifierGenerator
from sip.message import (
    Headers,
    Message,
    Request,
    Response,
    build_response,
    is_keepalive,
    parse_message,
)
from sip.ratelimit import RateLimit, SourceRateLimiter
from sip.registration import Registration, RetryPolicy, refresh_delay
from sip.timers import TimerSettings, is_reliable
from sip.transaction import (
    Action,
    ClientKey,
    ClientTransaction,
    Deliver,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    ServerKey,
    ServerTransaction,
    State,
    Terminated,
    TimedOut,
    Transmit,
    TransportFailed,
    client_key,
    client_key_for_request,
    server_key,
)
from sip.uri import NameAddress, SipUri, format_host_port, parse_name_address, parse_uri, parse_via

__all__ = [
    "ALLOWED_METHODS",
    "CoreStatistics",
    "LocalAddress",
    "Outgoing",
    "RateLimit",
    "RetryPolicy",
    "UserAgentCore",
]

logger = logging.getLogger(__name__)

ALLOWED_METHODS = ("INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "UPDATE", "INFO")
_ALLOW = ", ".join(ALLOWED_METHODS)
_ACCEPT = "application/sdp"

Address = tuple[str, int]
ResponseHandler = Callable[[Response | None, CallCause | None, float], None]


@dataclass(frozen=True)
class LocalAddress:
    """An address we listen on, put in Via and Contact (use the public address behind NAT)."""

    host: str
    port: int
    transport: str = "udp"


@dataclass(frozen=True)
class Outgoing:
    """Bytes the adapter must send to ``destination`` (host may be a name) over ``transport``."""

    data: bytes
    destination: tuple[str, int]
    transport: str


@dataclass
class CoreStatistics:
    """Counters of what the core received and refused (read them, never reset them)."""

    messages_received: int = 0
    malformed: int = 0
    bad_requests_answered: int = 0
    rate_limited: int = 0
    stray_responses: int = 0
    unknown_dialog: int = 0
    unsolicited_rejected: int = 0
    method_not_allowed: int = 0


@dataclass
class _ClientEntry:
    transaction: ClientTransaction
    destination: Address
    transport: str
    handler: ResponseHandler


@dataclass
class _ServerEntry:
    transaction: ServerTransaction
    destination: Address
    transport: str


class UserAgentCore:
    """One SIP user agent: any number of accounts, outbound and inbound calls, registrations.

    ``accept_calls=False`` (the dialer) answers every dialog-creating INVITE with
    ``unsolicited_status`` (403) whatever the user in its Request-URI, so scanners learn nothing
    about our accounts, and never media; ``accept_calls=True`` (the test line) emits
    ``IncomingCall`` instead. ``retry_policy`` spaces registration retries.
    """

    def __init__(
        self,
        local_address: LocalAddress,
        *,
        extra_addresses: Iterable[LocalAddress] = (),
        timer_settings: TimerSettings | None = None,
        identifiers: IdentifierGenerator | None = None,
        accept_calls: bool = False,
        unsolicited_status: int = 403,
        rate_limit: RateLimit | None = None,
        retry_policy: RetryPolicy | None = None,
        user_agent: str = "dialer",
    ) -> None:
        self._addresses: dict[str, LocalAddress] = {}
        for address in (*extra_addresses, local_address):
            self._addresses[address.transport.lower()] = address
        self._default_address = local_address
        self._settings = timer_settings or TimerSettings()
        self._ids = identifiers or IdentifierGenerator()
        self._accept_calls = accept_calls
        self._unsolicited_status = unsolicited_status
        self._limiter = SourceRateLimiter(rate_limit or RateLimit())
        self._retry_policy = retry_policy or RetryPolicy()
        self._user_agent = user_agent
        self._statistics = CoreStatistics()
        self._outgoing: list[Outgoing] = []
        self._events: list[Event] = []
        self._clients: dict[ClientKey, _ClientEntry] = {}
        self._servers: dict[ServerKey, _ServerEntry] = {}
        self._calls: dict[str, Call] = {}
        self._dialog_calls: dict[DialogKey, Call] = {}
        self._invite_calls: dict[ServerKey, Call] = {}
        self._registrations: dict[str, Registration] = {}

    # -- input ---------------------------------------------------------------------------------

    def receive(self, data: bytes, source: tuple[str, int], transport: str, now: float) -> None:
        """Feed one datagram (UDP) or one framed message (TCP/TLS) received from ``source``.

        Over the rate limit: dropped and counted. Unparseable: counted, answered 400 when the
        headers needed to route a response are readable, dropped otherwise.
        """
        self._statistics.messages_received += 1
        if not self._limiter.allow(source[0], now):
            self._statistics.rate_limited += 1
            return
        if is_keepalive(data):
            return
        try:
            message = parse_message(data)
        except MessageParseError as error:
            self._statistics.malformed += 1
            self._answer_malformed(data, error, source, transport, now)
            return
        self._dispatch(message, source, transport.lower(), now)

    def receive_message(
        self, message: Message, source: tuple[str, int], transport: str, now: float
    ) -> None:
        """Like :meth:`receive` for a message already parsed (``StreamFramer`` on TCP/TLS)."""
        self._statistics.messages_received += 1
        if not self._limiter.allow(source[0], now):
            self._statistics.rate_limited += 1
            return
        self._dispatch(message, source, transport.lower(), now)

    def transport_error(self, destination: tuple[str, int], transport: str, now: float) -> None:
        """Tell the core that sending to ``destination`` failed (ICMP unreachable, connection
        refused or reset, TLS failure). Transactions to it fail: calls end ``network_error``,
        registrations fail and back off."""
        transport = transport.lower()
        for entry in list(self._clients.values()):
            if entry.destination == destination and entry.transport == transport:
                self._run_client(entry, entry.transaction.transport_failed(), now)
        for key, server in list(self._servers.items()):
            if server.destination == destination and server.transport == transport:
                self._servers.pop(key, None)

    def handle_timers(self, now: float) -> None:
        """Fire every timer due at ``now`` (retransmissions, timeouts, ring timeout, refresh)."""
        for entry in list(self._clients.values()):
            self._run_client(entry, entry.transaction.handle_timers(now), now)
        for server in list(self._servers.values()):
            self._run_server(server, server.transaction.handle_timers(now))
        for call in list(self._calls.values()):
            while (name := call.timers.pop_due(now)) is not None:
                self._call_timer(call, name, now)
        for registration in list(self._registrations.values()):
            due = registration.next_attempt_at
            if due is not None and due <= now:
                registration.next_attempt_at = None
                self._reset_registration_auth(registration)
                self._send_register(registration, now, None)

    def next_timer(self) -> float | None:
        """The earliest time ``handle_timers`` must be called at, None when nothing is armed."""
        deadlines: list[float] = []
        for entry in self._clients.values():
            deadline = entry.transaction.next_timer()
            if deadline is not None:
                deadlines.append(deadline)
        for server in self._servers.values():
            deadline = server.transaction.next_timer()
            if deadline is not None:
                deadlines.append(deadline)
        for call in self._calls.values():
            deadline = call.timers.earliest()
            if deadline is not None:
                deadlines.append(deadline)
        for registration in self._registrations.values():
            if registration.next_attempt_at is not None:
                deadlines.append(registration.next_attempt_at)
        return min(deadlines, default=None)

    # -- output --------------------------------------------------------------------------------

    def outgoing(self) -> list[Outgoing]:
        """Take the messages to send (in order)."""
        result, self._outgoing = self._outgoing, []
        return result

    def events(self) -> list[Event]:
        """Take the events produced since the last call (in order)."""
        result, self._events = self._events, []
        return result

    @property
    def statistics(self) -> CoreStatistics:
        """Counters: received, malformed, answered 400, rate-limited, stray, 481, 403, 405."""
        return self._statistics

    def call_keys(self) -> list[str]:
        """Keys of the calls that have not ended yet."""
        return [key for key, call in self._calls.items() if call.state is not CallState.ENDED]

    # -- calls ---------------------------------------------------------------------------------

    def place_call(self, account: Account, target_uri: str, sdp_offer: bytes, now: float) -> str:
        """Send an INVITE with ``sdp_offer`` to ``target_uri`` (already dial-plan rewritten).

        Returns the call key (also used in the events). Raises ``LocalProtocolError`` when
        ``target_uri`` is not a SIP/SIPS URI.
        """
        try:
            target = parse_uri(target_uri)
        except MessageParseError as error:
            raise LocalProtocolError(f"invalid target URI {target_uri!r}: {error}") from error
        if target.scheme not in ("sip", "sips"):
            raise LocalProtocolError(f"cannot call a {target.scheme}: URI, rewrite it first")
        call_id = self._ids.call_id()
        local_tag = self._ids.tag()
        user = account.caller_id or account.username or None
        from_uri = SipUri(
            scheme=account.uri_scheme,
            user=user,
            host=account.host,
            port=None if account.port in (5060, 5061) else account.port,
        )
        from_address = NameAddress(account.display_name, from_uri, (("tag", local_tag),))
        call = Call(
            key=call_id,
            account=account,
            outbound=True,
            call_id=call_id,
            local_tag=local_tag,
            local_sdp=sdp_offer,
            destination=self._destination(account, target),
            transport=account.transport,
            target=target,
            from_value=str(from_address),
            to_value=str(NameAddress(None, target)),
        )
        self._calls[call.key] = call
        call.timers.arm("ring", now + account.ring_timeout)
        self._send_invite(call, now, None)
        return call.key

    def hangup(self, call_key: str, now: float, cause: CallCause = CallCause.local_hangup) -> None:
        """End a call whatever its state, reporting ``cause``.

        Connected: BYE, ``CallEnded(cause)`` at once. Outbound and not answered: CANCEL (sent
        as soon as a provisional response arrived, RFC 3261 §9.1), ``CallEnded`` when the
        INVITE is finished (487, or a 2xx in the race which is ACKed and BYEd); the cause is
        ``cancelled`` unless another one than ``local_hangup`` was given. Inbound not
        answered: 480 Temporarily Unavailable (``reject`` chooses another status). Unknown or
        already ended keys are ignored.
        """
        call = self._calls.get(call_key)
        if call is None or call.state is CallState.ENDED:
            return
        hung_up_by = _hung_up_by(cause)
        if call.state in (CallState.CONNECTED, CallState.ANSWERING):
            self._send_bye(call, now)
            self._end_call(call, cause, 0, "", hung_up_by, now)
            return
        if not call.outbound:
            self._respond_to_invite(call, 480, now)
            self._end_call(call, cause, 480, "Temporarily Unavailable", hung_up_by, now)
            return
        if call.hangup_cause is not None:
            return
        call.hangup_cause = CallCause.cancelled if cause is CallCause.local_hangup else cause
        call.timers.cancel("ring")
        if call.provisional_received:
            self._send_cancel(call, now)

    def ring(self, call_key: str, now: float, early_sdp: bytes | None = None) -> None:
        """Inbound: send 180 Ringing (or 183 Session Progress with ``early_sdp``)."""
        call = self._calls.get(call_key)
        if call is None or call.outbound or call.state is not CallState.CALLING:
            return
        if early_sdp is None:
            self._respond_to_invite(call, 180, now)
        else:
            self._respond_to_invite(call, 183, now, body=early_sdp)

    def answer(self, call_key: str, sdp_answer: bytes, now: float) -> None:
        """Inbound: send 200 OK with ``sdp_answer`` (retransmitted until the ACK arrives;
        ``CallAnswered`` is emitted on the ACK). Without an offer in the INVITE,
        ``sdp_answer`` is our offer and the ACK carries the caller's answer."""
        call = self._calls.get(call_key)
        if call is None or call.outbound or call.state is not CallState.CALLING:
            return
        entry = self._servers.get(call.server_transaction) if call.server_transaction else None
        if entry is None:
            return
        request = entry.transaction.request
        call.local_sdp = sdp_answer
        call.dialog = Dialog.as_server(request, call.local_tag)
        self._dialog_calls[call.dialog.key] = call
        response = self._respond_to_invite(call, 200, now, body=sdp_answer)
        call.state = CallState.ANSWERING
        self._repeat_answer(call, entry, response, call.remote_offer is None, now)

    def reject(self, call_key: str, status_code: int, now: float, reason: str = "") -> None:
        """Inbound: refuse with a final ``status_code`` (486, 603 ...); ``CallEnded`` follows."""
        call = self._calls.get(call_key)
        if call is None or call.outbound or call.state is not CallState.CALLING:
            return
        if not 300 <= status_code <= 699:
            raise LocalProtocolError(f"{status_code} is not a rejection status")
        self._respond_to_invite(call, status_code, now, reason=reason or None)
        self._end_call(call, cause_for_status(status_code), status_code, reason, "local", now)

    # -- registration --------------------------------------------------------------------------

    def register(self, account: Account, now: float) -> None:
        """Register ``account`` and keep it registered (refresh, backoff after failures).

        A no-op for ``account.register == False`` (IP-authenticated trunk).
        """
        if not account.register:
            return
        registration = self._registration_for(account)
        registration.unregistering = False
        registration.expires = account.register_expires
        registration.failures = 0
        registration.next_attempt_at = None
        self._reset_registration_auth(registration)
        self._send_register(registration, now, None)

    def unregister(self, account: Account, now: float) -> None:
        """Remove our binding (REGISTER with Expires: 0) and stop refreshing.

        ``RegistrationSucceeded(expires=0)`` or ``RegistrationFailed(retry_at=None)`` follows.
        """
        if not account.register:
            return
        registration = self._registration_for(account)
        registration.unregistering = True
        registration.next_attempt_at = None
        self._reset_registration_auth(registration)
        self._send_register(registration, now, None)

    # -- plumbing ------------------------------------------------------------------------------

    def _send(self, data: bytes, destination: Address, transport: str) -> None:
        self._outgoing.append(Outgoing(data, destination, transport))

    def _emit(self, event: Event) -> None:
        self._events.append(event)

    def _local(self, transport: str) -> LocalAddress:
        return self._addresses.get(transport.lower(), self._default_address)

    def _via(self, transport: str) -> str:
        local = self._local(transport)
        host_port = format_host_port(local.host, local.port)
        return f"SIP/2.0/{transport.upper()} {host_port};branch={self._ids.branch()};rport"

    def _contact(self, transport: str, user: str | None) -> str:
        local = self._local(transport)
        scheme = "sips" if transport == "tls" else "sip"
        uri = SipUri(scheme=scheme, user=user or None, host=local.host, port=local.port)
        if transport != "udp" and transport != "tls":
            uri = uri.with_parameter("transport", transport)
        return f"<{uri}>"

    def _destination(self, account: Account | None, hop: SipUri) -> Address:
        """Outbound proxy if the account has one, else ``hop`` (first Route or target)."""
        if account is not None and account.outbound_proxy:
            proxy = account.outbound_proxy
            if not proxy.startswith(("sip:", "sips:")):
                proxy = "sip:" + proxy
            hop = parse_uri(proxy)
        transport = account.transport if account is not None else "udp"
        default_port = 5061 if transport == "tls" or hop.scheme == "sips" else 5060
        return hop.host, hop.port or default_port

    def _dialog_destination(self, call: Call) -> Address:
        assert call.dialog is not None
        return self._destination(call.account, call.dialog.next_hop())

    def _start_client(
        self,
        request: Request,
        destination: Address,
        transport: str,
        handler: ResponseHandler,
        now: float,
    ) -> ClientKey:
        transaction: ClientTransaction
        if request.method == "INVITE":
            transaction = InviteClientTransaction(request, transport, self._settings)
        else:
            transaction = NonInviteClientTransaction(request, transport, self._settings)
        entry = _ClientEntry(transaction, destination, transport, handler)
        self._clients[transaction.key] = entry
        self._run_client(entry, transaction.start(now), now)
        return transaction.key

    def _run_client(self, entry: _ClientEntry, actions: list[Action], now: float) -> None:
        key = entry.transaction.key
        if entry.transaction.terminated and self._clients.get(key) is entry:
            # Forget it before running the handler, which may fail on a bad response.
            del self._clients[key]
        for action in actions:
            if isinstance(action, Transmit):
                self._send(action.data, entry.destination, entry.transport)
            elif isinstance(action, Deliver):
                entry.handler(action.response, None, now)
            elif isinstance(action, TimedOut):
                entry.handler(None, CallCause.timeout, now)
            elif isinstance(action, TransportFailed):
                entry.handler(None, CallCause.network_error, now)

    def _run_server(self, entry: _ServerEntry, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Transmit):
                self._send(action.data, entry.destination, entry.transport)
            elif (
                isinstance(action, Terminated) and self._servers.get(entry.transaction.key) is entry
            ):
                del self._servers[entry.transaction.key]

    def _respond(
        self,
        entry: _ServerEntry,
        status_code: int,
        now: float,
        *,
        reason: str | None = None,
        to_tag: str | None = None,
        headers: Iterable[tuple[str, str]] = (),
        body: bytes = b"",
    ) -> Response:
        response_headers = [("User-Agent", self._user_agent), *headers]
        if body:
            response_headers.append(("Content-Type", "application/sdp"))
        response = build_response(
            entry.transaction.request,
            status_code,
            reason,
            to_tag=to_tag
            if to_tag is not None
            else (self._ids.tag() if status_code > 100 else None),
            headers=response_headers,
            body=body,
        )
        self._run_server(entry, entry.transaction.send_response(response, now))
        return response

    # -- receiving -----------------------------------------------------------------------------

    def _dispatch(self, message: Message, source: Address, transport: str, now: float) -> None:
        if isinstance(message, Response):
            try:
                self._receive_response(message, now)
            except (RemoteProtocolError, ValueError) as error:
                self._statistics.malformed += 1
                logger.debug("dropping a response we cannot use: %s", error)
            return
        try:
            self._receive_request(message, source, transport, now)
        except RemoteProtocolError as error:
            self._statistics.malformed += 1
            self._answer_bad_request(message, error.status_code, source, transport, now)

    def _answer_malformed(
        self, data: bytes, error: MessageParseError, source: Address, transport: str, now: float
    ) -> None:
        try:
            message = parse_message(data, validate=False)
        except MessageParseError:
            return
        if not isinstance(message, Request) or message.method.upper() == "ACK":
            return
        if not all(name in message.headers for name in ("From", "To", "Call-ID", "CSeq")):
            return
        self._answer_bad_request(message, error.status_code, source, transport, now)

    def _answer_bad_request(
        self, request: Request, status_code: int, source: Address, transport: str, now: float
    ) -> None:
        if request.method.upper() == "ACK":
            return
        try:
            destination = _response_destination(request, source, transport)
            response = build_response(
                request, status_code, headers=[("User-Agent", self._user_agent)]
            )
            data = bytes(response)
        except (MessageParseError, ValueError):
            return
        self._statistics.bad_requests_answered += 1
        self._send(data, destination, transport)

    def _receive_response(self, response: Response, now: float) -> None:
        key = client_key(response)
        entry = self._clients.get(key)
        if entry is not None:
            self._run_client(entry, entry.transaction.receive_response(response, now), now)
            return
        if 200 <= response.status_code < 300 and key[1] == "INVITE":
            self._retransmitted_invite_success(response, now)
            return
        self._statistics.stray_responses += 1

    def _receive_request(
        self, request: Request, source: Address, transport: str, now: float
    ) -> None:
        _stamp_received(request, source)
        method = request.method.upper()
        destination = _response_destination(request, source, transport)
        if method == "ACK":
            self._receive_ack(request, now)
            return
        key = server_key(request)
        existing = self._servers.get(key)
        if existing is not None:
            self._run_server(existing, existing.transaction.receive_request(request, now))
            return
        transaction: ServerTransaction
        if method == "INVITE":
            transaction = InviteServerTransaction(request, transport, self._settings)
        else:
            transaction = NonInviteServerTransaction(request, transport, self._settings)
        entry = _ServerEntry(transaction, destination, transport)
        self._servers[key] = entry
        if method == "INVITE":
            self._respond(entry, 100, now)
        try:
            self._receive_new_request(entry, request, transport, now)
        except RemoteProtocolError as error:
            self._statistics.malformed += 1
            if transaction.state in (State.TRYING, State.PROCEEDING):
                self._respond(entry, error.status_code, now)

    def _receive_new_request(
        self, entry: _ServerEntry, request: Request, transport: str, now: float
    ) -> None:
        method = request.method.upper()
        if method not in ALLOWED_METHODS:
            self._statistics.method_not_allowed += 1
            self._respond(entry, 405, now, headers=[("Allow", _ALLOW)])
            return
        if method == "CANCEL":
            self._receive_cancel(entry, request, now)
            return
        required = [tag for value in request.headers.get_all("Require") if (tag := value.strip())]
        if required:
            self._respond(entry, 420, now, headers=[("Unsupported", ", ".join(required))])
            return
        dialog_key = dialog_key_of_request(request)
        if dialog_key is not None:
            call = self._dialog_calls.get(dialog_key)
            if call is None:
                self._statistics.unknown_dialog += 1
                self._respond(entry, 481, now)
                return
            self._receive_in_dialog(call, entry, request, now)
            return
        if method == "INVITE":
            self._receive_new_invite(entry, request, transport, now)
        elif method == "OPTIONS":
            self._respond(entry, 200, now, headers=self._capabilities())
        else:
            self._statistics.unknown_dialog += 1
            self._respond(entry, 481, now)

    def _capabilities(self) -> list[tuple[str, str]]:
        return [("Allow", _ALLOW), ("Accept", _ACCEPT), ("Supported", "")]

    def _receive_ack(self, request: Request, now: float) -> None:
        entry = self._servers.get(server_key(request))
        if entry is not None and entry.transaction.state is not State.ACCEPTED:
            # The ACK of a non-2xx final response: the transaction absorbs it. (An ACK of a 2xx
            # reusing the INVITE's branch, as RFC 2543 phones do, goes on to the dialog.)
            self._run_server(entry, entry.transaction.receive_request(request, now))
            return
        dialog_key = dialog_key_of_request(request)
        call = self._dialog_calls.get(dialog_key) if dialog_key is not None else None
        pending = call.pending_answer if call is not None else None
        if call is None or pending is None:
            return
        sequence = int((request.headers.get("CSeq") or "0").split()[0])
        if sequence != pending.sequence:
            return
        call.pending_answer = None
        call.timers.cancel("answer_retransmit")
        call.timers.cancel("answer_timeout")
        if call.state is CallState.ANSWERING:
            call.state = CallState.CONNECTED
            call.remote_sdp = call.remote_offer if call.remote_offer else (request.body or None)
            self._emit(CallAnswered(call.key, call.remote_sdp))
        elif pending.offered_in_answer and request.body and call.state is CallState.CONNECTED:
            call.remote_sdp = request.body
            self._emit(CallMediaChanged(call.key, request.body, call.local_sdp or b""))

    def _receive_cancel(self, entry: _ServerEntry, request: Request, now: float) -> None:
        invite_key = server_key(request, "INVITE")
        invite_entry = self._servers.get(invite_key)
        if invite_entry is None:
            self._statistics.unknown_dialog += 1
            self._respond(entry, 481, now)
            return
        self._respond(entry, 200, now)
        call = self._invite_calls.get(invite_key)
        if call is None or call.state is not CallState.CALLING:
            return
        self._respond_to_invite(call, 487, now)
        self._end_call(call, CallCause.cancelled, 487, "Request Terminated", "remote", now)

    def _receive_new_invite(
        self, entry: _ServerEntry, request: Request, transport: str, now: float
    ) -> None:
        if not self._accept_calls:
            self._statistics.unsolicited_rejected += 1
            self._respond(entry, self._unsolicited_status, now)
            return
        local_tag = self._ids.tag()
        try:
            Dialog.as_server(request, local_tag)  # Contact and Record-Route must be usable
        except MessageParseError:
            self._respond(entry, 400, now, reason="Bad Contact or Record-Route")
            return
        call = Call(
            key=self._ids.call_key(),
            account=None,
            outbound=False,
            call_id=request.headers.get("Call-ID") or "",
            local_tag=local_tag,
            local_sdp=None,
            destination=entry.destination,
            transport=transport,
            server_transaction=entry.transaction.key,
            remote_offer=request.body or None,
        )
        self._calls[call.key] = call
        self._invite_calls[entry.transaction.key] = call
        self._emit(IncomingCall(call.key, request, request.body or None))

    def _receive_in_dialog(
        self, call: Call, entry: _ServerEntry, request: Request, now: float
    ) -> None:
        dialog = call.dialog
        assert dialog is not None
        method = request.method.upper()
        if not dialog.accept_remote_sequence(request):
            self._respond(entry, 500, now, reason="Out Of Order", headers=[("Retry-After", "1")])
            return
        tag = call.local_tag
        if method == "BYE":
            self._respond(entry, 200, now, to_tag=tag)
            self._end_call(call, CallCause.remote_hangup, 0, "BYE", "remote", now)
            return
        if call.state is CallState.ENDED:
            self._respond(entry, 481, now, to_tag=tag)
            return
        if method == "OPTIONS":
            self._respond(entry, 200, now, to_tag=tag, headers=self._capabilities())
        elif method == "INFO":
            self._respond(entry, 200, now, to_tag=tag)
            digit = _dtmf_from_info(request)
            if digit is not None:
                self._emit(DtmfInfoReceived(call.key, digit[0], digit[1]))
        elif method in ("INVITE", "UPDATE"):
            self._receive_session_change(call, entry, request, now)
        else:
            self._respond(entry, 405, now, to_tag=tag, headers=[("Allow", _ALLOW)])

    def _receive_session_change(
        self, call: Call, entry: _ServerEntry, request: Request, now: float
    ) -> None:
        assert call.dialog is not None
        tag = call.local_tag
        method = request.method.upper()
        if method == "INVITE" and call.pending_answer is not None:
            self._respond(entry, 491, now, to_tag=tag)
            return
        if call.local_sdp is None:
            self._respond(entry, 500, now, to_tag=tag, headers=[("Retry-After", "1")])
            return
        call.dialog.update_remote_target(request)
        contact = ("Contact", self._contact(call.transport, None))
        extra = [contact, ("Allow", _ALLOW), ("Supported", "")]
        if not request.body:
            body = call.local_sdp if method == "INVITE" else b""
            response = self._respond(entry, 200, now, to_tag=tag, headers=extra, body=body)
            if method == "INVITE":
                self._repeat_answer(call, entry, response, True, now)
            return
        codecs = call.account.codecs if call.account is not None else ("PCMU", "PCMA")
        try:
            answer = answer_remote_offer(call.local_sdp, request.body, codecs)
        except RemoteProtocolError as error:
            self._respond(entry, error.status_code, now, to_tag=tag)
            return
        call.local_sdp = answer
        call.remote_sdp = request.body
        response = self._respond(entry, 200, now, to_tag=tag, headers=extra, body=answer)
        if method == "INVITE":
            self._repeat_answer(call, entry, response, False, now)
        self._emit(CallMediaChanged(call.key, request.body, answer))

    def _retransmitted_invite_success(self, response: Response, now: float) -> None:
        call = self._dialog_calls.get(dialog_key_of_response(response))
        if call is not None:
            if call.acknowledgement is not None and call.acknowledgement_destination is not None:
                self._send(call.acknowledgement, call.acknowledgement_destination, call.transport)
            return
        call = self._calls.get(response.headers.get("Call-ID") or "")
        if call is None or not call.outbound or call.invite is None:
            self._statistics.stray_responses += 1
            return
        # A 2xx from another fork than the one we are talking to: acknowledge it and leave.
        forked = Call(
            key=call.key,
            account=call.account,
            outbound=True,
            call_id=call.call_id,
            local_tag=call.local_tag,
            local_sdp=call.local_sdp,
            destination=call.destination,
            transport=call.transport,
            invite=call.invite,
            state=CallState.ENDED,
        )
        self._acknowledge_success(forked, response, now)
        self._send_bye(forked, now)

    # -- outbound call flow --------------------------------------------------------------------

    def _send_invite(self, call: Call, now: float, authorization: tuple[str, str] | None) -> None:
        account = call.account
        assert account is not None
        assert call.target is not None
        call.sequence += 1
        headers = Headers()
        headers.add("Via", self._via(call.transport))
        headers.add("Max-Forwards", "70")
        headers.add("From", call.from_value)
        headers.add("To", call.to_value)
        headers.add("Call-ID", call.call_id)
        headers.add("CSeq", f"{call.sequence} INVITE")
        headers.add("Contact", self._contact(call.transport, account.username))
        if authorization is not None:
            headers.add(*authorization)
        headers.add("Allow", _ALLOW)
        headers.add("Supported", "")
        headers.add("User-Agent", self._user_agent)
        headers.add("Content-Type", "application/sdp")
        request = Request("INVITE", str(call.target), headers, call.local_sdp or b"")
        call.invite = request
        call.provisional_received = False
        call.destination = self._destination(account, call.target)

        def handler(response: Response | None, failure: CallCause | None, now: float) -> None:
            self._invite_outcome(call, request, response, failure, now)

        call.invite_transaction = self._start_client(
            request, call.destination, call.transport, handler, now
        )

    def _invite_outcome(
        self,
        call: Call,
        request: Request,
        response: Response | None,
        failure: CallCause | None,
        now: float,
    ) -> None:
        if request is not call.invite:
            return  # an earlier INVITE of this call (before a challenge or a redirect)
        if response is None:
            if call.state is CallState.CALLING:
                cause = failure or CallCause.timeout
                reason = "Request Timeout" if cause is CallCause.timeout else "Transport Error"
                if call.hangup_cause is not None:
                    self._end_call(call, call.hangup_cause, 0, reason, "local", now)
                else:
                    self._end_call(call, cause, 0, reason, "system", now)
            return
        code = response.status_code
        if code < 200:
            self._outbound_provisional(call, response, now)
        elif code < 300:
            self._outbound_success(call, response, now)
        else:
            self._outbound_failure(call, response, now)

    def _outbound_provisional(self, call: Call, response: Response, now: float) -> None:
        call.provisional_received = True
        if call.state is not CallState.CALLING:
            return
        if call.hangup_cause is not None:
            if not call.cancel_sent:
                self._send_cancel(call, now)
            return
        if response.status_code == 100:
            return
        call.alerted = True
        self._emit(
            CallProgress(call.key, response.status_code, response.reason, response.body or None)
        )

    def _outbound_success(self, call: Call, response: Response, now: float) -> None:
        if call.state is not CallState.CALLING:
            return
        try:
            self._acknowledge_success(call, response, now)
        except MessageParseError as error:
            # Unusable Contact or Record-Route: we cannot reach the callee inside the dialog.
            reason = f"Unusable {response.status_code}: {error}"
            self._end_call(call, CallCause.rejected, response.status_code, reason, "system", now)
            return
        assert call.dialog is not None
        self._dialog_calls[call.dialog.key] = call
        call.timers.cancel("ring")
        call.timers.cancel("cancel_give_up")
        if call.hangup_cause is not None:
            # The 200/CANCEL race: the callee answered while our CANCEL was on its way.
            self._send_bye(call, now)
            self._end_call(call, call.hangup_cause, 0, "Answered after CANCEL", "local", now)
            return
        call.state = CallState.CONNECTED
        call.remote_sdp = response.body or None
        self._emit(CallAnswered(call.key, call.remote_sdp))

    def _acknowledge_success(self, call: Call, response: Response, now: float) -> None:
        assert call.invite is not None
        call.dialog = Dialog.as_client(call.invite, response, default_target=call.target)
        sequence = int((call.invite.headers.get("CSeq") or "1").split()[0])
        ack = call.dialog.create_request(
            "ACK",
            via=self._via(call.transport),
            sequence=sequence,
            headers=(("User-Agent", self._user_agent),),
        )
        call.acknowledgement = bytes(ack)
        call.acknowledgement_destination = self._dialog_destination(call)
        self._send(call.acknowledgement, call.acknowledgement_destination, call.transport)

    def _outbound_failure(self, call: Call, response: Response, now: float) -> None:
        if call.state is not CallState.CALLING:
            return
        code = response.status_code
        if call.hangup_cause is not None:
            self._end_call(call, call.hangup_cause, code, response.reason, "local", now)
            return
        if code in (401, 407) and self._retry_invite_with_credentials(call, response, now):
            return
        if 300 <= code < 400:
            contacts = response.headers.get_all("Contact")
            if call.redirected:
                self._end_call(call, CallCause.redirect_loop, code, response.reason, "remote", now)
                return
            if contacts:
                try:
                    new_target = parse_name_address(contacts[0]).uri
                except MessageParseError:
                    new_target = None
                if new_target is not None and new_target.scheme in ("sip", "sips"):
                    call.redirected = True
                    call.target = new_target
                    call.to_value = str(NameAddress(None, new_target))
                    self._reset_call_auth(call)
                    self._send_invite(call, now, None)
                    return
        cause = cause_for_status(code, alerted=call.alerted)
        self._end_call(call, cause, code, response.reason, "remote", now)

    def _reset_call_auth(self, call: Call) -> None:
        call.challenges_answered = 0
        call.stale_retry_used = False

    def _retry_invite_with_credentials(self, call: Call, response: Response, now: float) -> bool:
        account = call.account
        assert account is not None
        assert call.target is not None
        header = _challenge_to_answer(response, account, call)
        if header is None:
            return False
        name, challenge = header
        authorization = build_authorization(
            challenge,
            method="INVITE",
            uri=str(call.target),
            username=account.credentials_username,
            password=account.password,
            nonce_count=1,
            cnonce=self._ids.cnonce(),
            body=call.local_sdp or b"",
        )
        self._send_invite(call, now, (name, authorization))
        return True

    def _send_cancel(self, call: Call, now: float) -> None:
        invite = call.invite
        assert invite is not None
        headers = Headers()
        headers.add("Via", invite.headers.get_all("Via")[0])
        headers.add("Max-Forwards", "70")
        for route in invite.headers.get_all("Route"):
            headers.add("Route", route)
        for name in ("From", "To", "Call-ID"):
            headers.add(name, invite.headers.get(name) or "")
        sequence = (invite.headers.get("CSeq") or "1").split()[0]
        headers.add("CSeq", f"{sequence} CANCEL")
        headers.add("User-Agent", self._user_agent)
        cancel = Request("CANCEL", invite.uri, headers)
        call.cancel_sent = True
        call.timers.arm("cancel_give_up", now + self._settings.transaction_timeout)
        self._start_client(cancel, call.destination, call.transport, _ignore_outcome, now)

    def _send_bye(
        self, call: Call, now: float, authorization: tuple[str, str] | None = None
    ) -> None:
        """BYE inside the call's dialog; a proxy's challenge to it is answered once."""
        dialog = call.dialog
        if dialog is None:
            return
        headers: tuple[tuple[str, str], ...] = (("User-Agent", self._user_agent),)
        if authorization is not None:
            headers = (*headers, authorization)
        bye = dialog.create_request("BYE", via=self._via(call.transport), headers=headers)

        def handler(response: Response | None, failure: CallCause | None, now: float) -> None:
            account = call.account
            if (
                authorization is not None
                or account is None
                or response is None
                or response.status_code not in (401, 407)
                or not account.password
            ):
                return
            header = "WWW-Authenticate" if response.status_code == 401 else "Proxy-Authenticate"
            try:
                challenge = choose_challenge(response.headers.get_all(header))
            except DigestError:
                return
            value = build_authorization(
                challenge,
                method="BYE",
                uri=bye.uri,
                username=account.credentials_username,
                password=account.password,
                nonce_count=1,
                cnonce=self._ids.cnonce(),
            )
            name = "Authorization" if response.status_code == 401 else "Proxy-Authorization"
            self._send_bye(call, now, (name, value))

        self._start_client(bye, self._dialog_destination(call), call.transport, handler, now)

    def _end_call(
        self,
        call: Call,
        cause: CallCause,
        status_code: int,
        reason: str,
        hung_up_by: HungUpBy,
        now: float,
    ) -> None:
        if call.state is CallState.ENDED:
            return
        call.state = CallState.ENDED
        call.pending_answer = None
        call.timers.clear()
        self._emit(CallEnded(call.key, cause, status_code, reason, hung_up_by))
        if call.dialog is not None:
            # Keep the dialog a while: answer retransmitted 2xx with our ACK, BYE retransmissions.
            call.timers.arm("forget", now + self._settings.transaction_timeout)
        else:
            self._forget(call)

    def _forget(self, call: Call) -> None:
        if self._calls.get(call.key) is call:
            del self._calls[call.key]
        if call.dialog is not None and self._dialog_calls.get(call.dialog.key) is call:
            del self._dialog_calls[call.dialog.key]
        if call.server_transaction is not None:
            self._invite_calls.pop(call.server_transaction, None)
        if call.outbound and call.invite_transaction is not None:
            entry = self._clients.get(call.invite_transaction)
            if entry is not None and entry.transaction.state is State.PROCEEDING:
                del self._clients[call.invite_transaction]

    def _call_timer(self, call: Call, name: str, now: float) -> None:
        if name == "ring":
            self.hangup(call.key, now, CallCause.no_answer)
        elif name == "cancel_give_up":
            # §9.1: no final response 64*T1 after our CANCEL: consider the INVITE finished.
            cause = call.hangup_cause or CallCause.cancelled
            self._end_call(call, cause, 0, "No response to CANCEL", "local", now)
            self._forget(call)
        elif name == "forget":
            self._forget(call)
        elif name == "answer_retransmit":
            pending = call.pending_answer
            if pending is not None:
                self._send(pending.data, pending.destination, call.transport)
                pending.interval = self._settings.next_interval(pending.interval)
                call.timers.arm("answer_retransmit", now + pending.interval)
        elif name == "answer_timeout" and call.pending_answer is not None:
            # §13.3.1.4: no ACK for our 2xx within 64*T1: the session is dead.
            call.pending_answer = None
            self._send_bye(call, now)
            self._end_call(call, CallCause.timeout, 0, "No ACK", "system", now)

    # -- inbound call flow ---------------------------------------------------------------------

    def _respond_to_invite(
        self,
        call: Call,
        status_code: int,
        now: float,
        *,
        reason: str | None = None,
        body: bytes = b"",
    ) -> Response:
        assert call.server_transaction is not None
        entry = self._servers.get(call.server_transaction)
        if entry is None:
            raise LocalProtocolError("the INVITE transaction of this call is gone")
        headers: list[tuple[str, str]] = []
        if status_code < 300:
            headers.append(("Contact", self._contact(call.transport, None)))
            headers.append(("Allow", _ALLOW))
            headers.append(("Supported", ""))
        return self._respond(
            entry,
            status_code,
            now,
            reason=reason,
            to_tag=call.local_tag,
            headers=headers,
            body=body,
        )

    def _repeat_answer(
        self,
        call: Call,
        entry: _ServerEntry,
        response: Response,
        offered: bool,
        now: float,
    ) -> None:
        sequence = int((entry.transaction.request.headers.get("CSeq") or "0").split()[0])
        call.pending_answer = RepeatedAnswer(
            bytes(response), entry.destination, sequence, self._settings.t1, offered
        )
        if not is_reliable(call.transport):
            call.timers.arm("answer_retransmit", now + self._settings.t1)
        call.timers.arm("answer_timeout", now + self._settings.transaction_timeout)

    # -- registration flow ---------------------------------------------------------------------

    def _registration_for(self, account: Account) -> Registration:
        registration = self._registrations.get(account.name)
        if registration is None or registration.account != account:
            registration = Registration(
                account=account,
                call_id=self._ids.call_id(),
                from_tag=self._ids.tag(),
                contact=self._contact(account.transport, account.username),
                expires=account.register_expires,
            )
            self._registrations[account.name] = registration
        return registration

    def _reset_registration_auth(self, registration: Registration) -> None:
        registration.challenges_answered = 0
        registration.stale_retry_used = False

    def _send_register(
        self, registration: Registration, now: float, authorization: tuple[str, str] | None
    ) -> None:
        account = registration.account
        registration.sequence += 1
        registrar = _registrar_uri(account)
        address_of_record = f"<{account.address_of_record}>"
        expires = 0 if registration.unregistering else registration.expires
        headers = Headers()
        headers.add("Via", self._via(account.transport))
        headers.add("Max-Forwards", "70")
        headers.add("From", f"{address_of_record};tag={registration.from_tag}")
        headers.add("To", address_of_record)
        headers.add("Call-ID", registration.call_id)
        headers.add("CSeq", f"{registration.sequence} REGISTER")
        headers.add("Contact", registration.contact)
        headers.add("Expires", str(expires))
        if authorization is not None:
            headers.add(*authorization)
        headers.add("Allow", _ALLOW)
        headers.add("User-Agent", self._user_agent)
        request = Request("REGISTER", str(registrar), headers)

        key = client_key_for_request(request)

        def handler(response: Response | None, failure: CallCause | None, now: float) -> None:
            current = self._registrations.get(account.name) is registration
            if current and registration.transaction == key:
                self._register_outcome(registration, request, response, failure, now)

        registration.transaction = key
        self._start_client(
            request, self._destination(account, registrar), account.transport, handler, now
        )

    def _register_outcome(
        self,
        registration: Registration,
        request: Request,
        response: Response | None,
        failure: CallCause | None,
        now: float,
    ) -> None:
        if response is None:
            cause = failure or CallCause.timeout
            reason = "Request Timeout" if cause is CallCause.timeout else "Transport Error"
            self._registration_failed(registration, cause, 0, reason, now)
            return
        code = response.status_code
        if code < 200:
            return
        name = registration.account.name
        if code < 300:
            if registration.unregistering:
                del self._registrations[name]
                self._emit(RegistrationSucceeded(name, 0))
                return
            expires = _granted_expires(response, registration)
            registration.failures = 0
            registration.next_attempt_at = now + refresh_delay(
                expires, self._settings.transaction_timeout
            )
            self._emit(RegistrationSucceeded(name, expires))
            return
        if code in (401, 407) and self._retry_register_with_credentials(
            registration, request, response, now
        ):
            return
        if code == 423:
            minimum = _int_header(response, "Min-Expires")
            if minimum is not None and minimum > registration.expires:
                registration.expires = minimum
                self._reset_registration_auth(registration)
                self._send_register(registration, now, None)
                return
        self._registration_failed(registration, cause_for_status(code), code, response.reason, now)

    def _retry_register_with_credentials(
        self, registration: Registration, request: Request, response: Response, now: float
    ) -> bool:
        account = registration.account
        header = _challenge_to_answer(response, account, registration)
        if header is None:
            return False
        name, challenge = header
        authorization = build_authorization(
            challenge,
            method="REGISTER",
            uri=request.uri,
            username=account.credentials_username,
            password=account.password,
            nonce_count=1,
            cnonce=self._ids.cnonce(),
        )
        self._send_register(registration, now, (name, authorization))
        return True

    def _registration_failed(
        self, registration: Registration, cause: CallCause, code: int, reason: str, now: float
    ) -> None:
        name = registration.account.name
        if registration.unregistering:
            del self._registrations[name]
            self._emit(RegistrationFailed(name, cause, code, reason, None))
            return
        registration.failures += 1
        retry_at = now + self._retry_policy.delay(registration.failures)
        registration.next_attempt_at = retry_at
        self._emit(RegistrationFailed(name, cause, code, reason, retry_at))


# -- helpers ---------------------------------------------------------------------------------


def _ignore_outcome(response: Response | None, failure: CallCause | None, now: float) -> None:
    """Outcome handler of CANCEL and BYE: nothing depends on their answer."""


def _hung_up_by(cause: CallCause) -> HungUpBy:
    return "local" if cause in (CallCause.local_hangup, CallCause.cancelled) else "system"


def _stamp_received(request: Request, source: Address) -> None:
    """RFC 3261 §18.2.1 and RFC 3581: note in the top Via where the request came from."""
    values = request.headers.get_all("Via")
    if not values:
        raise MessageParseError("missing Via")
    top = parse_via(values[0]).with_received(source[0], source[1])
    request.headers.remove("Via")
    for value in (str(top), *values[1:]):
        request.headers.add("Via", value)


def _response_destination(request: Request, source: Address, transport: str) -> Address:
    """Where responses to ``request`` go: back over the connection for TCP/TLS; over UDP to
    the source address, at the source port if ``rport`` was asked for (RFC 3581), else at the
    sent-by port (RFC 3261 §18.2.2)."""
    if is_reliable(transport):
        return source
    values = request.headers.get_all("Via")
    if not values:
        raise MessageParseError("missing Via")
    via = parse_via(values[0])
    if via.rport_requested:
        return source[0], source[1]
    return source[0], via.port or 5060


def _registrar_uri(account: Account) -> SipUri:
    return SipUri(
        scheme=account.uri_scheme,
        host=account.host,
        port=None if account.port in (5060, 5061) else account.port,
    )


def _int_header(message: Message, name: str) -> int | None:
    value = (message.headers.get(name) or "").strip()
    return int(value) if value.isdigit() else None


def _granted_expires(response: Response, registration: Registration) -> int:
    """The binding lifetime the registrar granted (our Contact's ``expires``, else Expires)."""
    ours = parse_name_address(registration.contact).uri
    for value in response.headers.get_all("Contact"):
        try:
            contact = parse_name_address(value)
        except MessageParseError:
            continue
        same = (contact.uri.host, contact.uri.port, contact.uri.user) == (
            ours.host,
            ours.port,
            ours.user,
        )
        expires = contact.parameter("expires")
        if same and expires is not None and expires.isdigit():
            return int(expires)
    header = _int_header(response, "Expires")
    return header if header is not None else registration.expires


def _challenge_to_answer(
    response: Response, account: Account, state: Call | Registration
) -> tuple[str, Challenge] | None:
    """The header name and challenge to answer, or None when we must give up.

    A challenge is answered once; a second one means our credentials were refused, unless it
    says ``stale=true`` (our nonce expired, the password was right), which is answered once more.
    """
    if not account.password:
        return None
    if response.status_code == 401:
        challenge_header, answer_header = "WWW-Authenticate", "Authorization"
    else:
        challenge_header, answer_header = "Proxy-Authenticate", "Proxy-Authorization"
    try:
        challenge = choose_challenge(response.headers.get_all(challenge_header))
    except DigestError:
        return None
    if account.realm is not None and challenge.realm != account.realm:
        return None
    if state.challenges_answered >= 1:
        if not challenge.stale or state.stale_retry_used:
            return None
        state.stale_retry_used = True
    state.challenges_answered += 1
    return answer_header, challenge


def _dtmf_from_info(request: Request) -> tuple[str, int | None] | None:
    """The digit of an INFO carrying application/dtmf-relay (``Signal=5``) or application/dtmf."""
    content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    text = request.body.decode("utf-8", "replace")
    if content_type == "application/dtmf":
        digit = text.strip()[:1]
        return (digit, None) if digit else None
    if content_type != "application/dtmf-relay":
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, _, value = line.partition("=")
        fields[name.strip().lower()] = value.strip()
    signal = fields.get("signal", "")[:1]
    if not signal or signal not in "0123456789*#ABCDabcd":
        return None
    duration = fields.get("duration", "")
    return signal.upper(), int(duration) if duration.isdigit() else None

"""The four SIP transaction state machines of RFC 3261 §17, sans-I/O.

A transaction never touches a socket or a clock: the core feeds it messages and the current
time, and it answers with a list of actions:

* :class:`Transmit` – send these bytes to the transaction's peer;
* :class:`Deliver` – a response the transaction user (call, registration) must see;
* :class:`TimedOut` – timer B/F (client) or H (server) expired;
* :class:`TransportFailed` – the transport reported an error for this transaction;
* :class:`Terminated` – the transaction is over and can be forgotten.

Over reliable transports (TCP/TLS) nothing is retransmitted and timers D, I, J and K are zero,
so the transaction ends on the next ``handle_timers`` call. Retransmissions of an INVITE
(timer A) double without a cap, as §17.1.1.2 says; non-INVITE requests (timer E) and INVITE
final responses (timer G) double up to T2.

Matching (§17.1.3, §17.2.3): a response belongs to the client transaction with its top Via
branch and CSeq method (:func:`client_key`); a request belongs to the server transaction with
its top Via branch, sent-by and method, ACK counting as INVITE (:func:`server_key`). A CANCEL
has its own server transaction; :func:`server_key` with ``method="INVITE"`` finds the INVITE it
cancels.
"""

from __future__ import annotations

import abc
import enum
from dataclasses import dataclass

from sip.errors import MessageParseError
from sip.message import Headers, Request, Response
from sip.timers import Deadlines, TimerSettings, is_reliable
from sip.uri import Via, parse_via


@dataclass(frozen=True)
class Transmit:
    """Send ``data`` to the transaction's peer."""

    data: bytes


@dataclass(frozen=True)
class Deliver:
    """Pass ``response`` to the transaction user."""

    response: Response


@dataclass(frozen=True)
class TimedOut:
    """No (final) answer in time: timer B, F or H fired."""


@dataclass(frozen=True)
class TransportFailed:
    """The transport could not deliver our message."""


@dataclass(frozen=True)
class Terminated:
    """The transaction is over; the core drops it."""


Action = Transmit | Deliver | TimedOut | TransportFailed | Terminated

ClientKey = tuple[str, str]
ServerKey = tuple[str, str, str]


class State(enum.Enum):
    """Transaction states (the union of the four machines' states)."""

    CALLING = "calling"
    TRYING = "trying"
    PROCEEDING = "proceeding"
    COMPLETED = "completed"
    ACCEPTED = "accepted"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


def top_via_of(headers: Headers) -> Via:
    """The first Via of a message; raises ``MessageParseError`` when there is none."""
    values = headers.get_all("Via")
    if not values:
        raise MessageParseError("missing Via")
    return parse_via(values[0])


def cseq_method(headers: Headers) -> str:
    """The method of the CSeq header."""
    value = headers.get("CSeq")
    parts = (value or "").split()
    if len(parts) != 2:
        raise MessageParseError("missing or invalid CSeq")
    return parts[1].upper()


def client_key(response: Response) -> ClientKey:
    """The key of the client transaction a response belongs to: (branch, CSeq method)."""
    branch = top_via_of(response.headers).branch or ""
    return branch, cseq_method(response.headers)


def client_key_for_request(request: Request) -> ClientKey:
    """The key of the client transaction that sends ``request``."""
    branch = top_via_of(request.headers).branch or ""
    return branch, request.method.upper()


def server_key(request: Request, method: str | None = None) -> ServerKey:
    """The key of the server transaction a request belongs to: (branch, sent-by, method).

    ACK maps to its INVITE's transaction; pass ``method="INVITE"`` to find the INVITE that a
    CANCEL cancels. Requests without an RFC 3261 branch get a key built from the fields that
    identify a transaction in RFC 2543 (Call-ID, CSeq number, From tag, Request-URI).
    """
    via = top_via_of(request.headers)
    wanted = (method or request.method).upper()
    if wanted == "ACK":
        wanted = "INVITE"
    sent_by = f"{via.host}:{via.port or 5060}".lower()
    branch = via.branch or ""
    if not branch.startswith("z9hG4bK"):
        cseq_number = (request.headers.get("CSeq") or "").split(" ")[0]
        branch = "|".join(
            ("legacy", request.headers.get("Call-ID") or "", cseq_number, request.uri, branch)
        )
    return branch, sent_by, wanted


class _Transaction(abc.ABC):
    def __init__(self, transport: str, settings: TimerSettings) -> None:
        self.transport = transport.lower()
        self.settings = settings
        self.reliable = is_reliable(transport)
        self.state = State.TERMINATED
        self._timers = Deadlines()

    @property
    def terminated(self) -> bool:
        """Whether the transaction is over."""
        return self.state is State.TERMINATED

    def next_timer(self) -> float | None:
        """When ``handle_timers`` must run next for this transaction."""
        return self._timers.earliest()

    def handle_timers(self, now: float) -> list[Action]:
        """Fire every timer due at ``now``."""
        actions: list[Action] = []
        while (name := self._timers.pop_due(now)) is not None:
            actions.extend(self._fire(name, now))
        return actions

    def transport_failed(self) -> list[Action]:
        """The transport failed to deliver one of our messages (§17.1.4, §17.2.4)."""
        if self.terminated:
            return []
        return [TransportFailed(), *self._terminate()]

    def _terminate(self) -> list[Action]:
        self.state = State.TERMINATED
        self._timers.clear()
        return [Terminated()]

    @abc.abstractmethod
    def _fire(self, name: str, now: float) -> list[Action]:
        raise NotImplementedError


class ClientTransaction(_Transaction):
    """Common part of the INVITE and non-INVITE client transactions."""

    def __init__(self, request: Request, transport: str, settings: TimerSettings) -> None:
        super().__init__(transport, settings)
        self.request = request
        self.key = client_key_for_request(request)
        self._request_bytes = bytes(request)
        self._interval = settings.t1

    @abc.abstractmethod
    def start(self, now: float) -> list[Action]:
        """Send the request for the first time and arm the timers."""
        raise NotImplementedError

    @abc.abstractmethod
    def receive_response(self, response: Response, now: float) -> list[Action]:
        """A response matching this transaction arrived."""
        raise NotImplementedError


class InviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.1: timers A (retransmit), B (give up), D (absorb retransmissions).

    A 2xx terminates it at once (the dialog ACKs 2xx with a new branch); for 300-699 it sends
    the ACK itself, with the INVITE's branch, and repeats it for every retransmitted response.
    """

    def __init__(self, request: Request, transport: str, settings: TimerSettings) -> None:
        super().__init__(request, transport, settings)
        self._ack: bytes | None = None

    def start(self, now: float) -> list[Action]:
        self.state = State.CALLING
        if not self.reliable:
            self._timers.arm("A", now + self._interval)
        self._timers.arm("B", now + self.settings.transaction_timeout)
        return [Transmit(self._request_bytes)]

    def receive_response(self, response: Response, now: float) -> list[Action]:
        code = response.status_code
        if self.state in (State.CALLING, State.PROCEEDING):
            if code < 200:
                self.state = State.PROCEEDING
                self._timers.cancel("A")
                self._timers.cancel("B")
                return [Deliver(response)]
            if code < 300:
                return [Deliver(response), *self._terminate()]
            self._ack = bytes(build_non_2xx_ack(self.request, response))
            self.state = State.COMPLETED
            self._timers.clear()
            self._timers.arm("D", now + self.settings.timer_d(self.transport))
            return [Transmit(self._ack), Deliver(response)]
        if self.state is State.COMPLETED and code >= 300 and self._ack is not None:
            return [Transmit(self._ack)]
        return []

    def _fire(self, name: str, now: float) -> list[Action]:
        if name == "A" and self.state is State.CALLING:
            self._interval = self.settings.next_interval(self._interval, cap_at_t2=False)
            self._timers.arm("A", now + self._interval)
            return [Transmit(self._request_bytes)]
        if name == "B" and self.state is State.CALLING:
            return [TimedOut(), *self._terminate()]
        if name == "D":
            return self._terminate()
        return []


class NonInviteClientTransaction(ClientTransaction):
    """RFC 3261 §17.1.2: timers E (retransmit, capped at T2), F (give up), K (absorb)."""

    def start(self, now: float) -> list[Action]:
        self.state = State.TRYING
        if not self.reliable:
            self._timers.arm("E", now + self._interval)
        self._timers.arm("F", now + self.settings.transaction_timeout)
        return [Transmit(self._request_bytes)]

    def receive_response(self, response: Response, now: float) -> list[Action]:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []
        if response.status_code < 200:
            self.state = State.PROCEEDING
            return [Deliver(response)]
        self.state = State.COMPLETED
        self._timers.clear()
        self._timers.arm("K", now + self.settings.timer_k(self.transport))
        return [Deliver(response)]

    def _fire(self, name: str, now: float) -> list[Action]:
        if name == "E" and self.state in (State.TRYING, State.PROCEEDING):
            if self.state is State.PROCEEDING:
                self._interval = self.settings.t2
            else:
                self._interval = self.settings.next_interval(self._interval)
            self._timers.arm("E", now + self._interval)
            return [Transmit(self._request_bytes)]
        if name == "F" and self.state in (State.TRYING, State.PROCEEDING):
            return [TimedOut(), *self._terminate()]
        if name == "K":
            return self._terminate()
        return []


class ServerTransaction(_Transaction):
    """Common part of the INVITE and non-INVITE server transactions."""

    def __init__(self, request: Request, transport: str, settings: TimerSettings) -> None:
        super().__init__(transport, settings)
        self.request = request
        self.key = server_key(request)
        self.last_response: Response | None = None
        self._last_bytes: bytes | None = None

    @abc.abstractmethod
    def receive_request(self, request: Request, now: float) -> list[Action]:
        """A retransmission of the request (or, for INVITE, the ACK of a non-2xx)."""
        raise NotImplementedError

    @abc.abstractmethod
    def send_response(self, response: Response, now: float) -> list[Action]:
        """The transaction user answers; returns what to transmit."""
        raise NotImplementedError

    def _remember(self, response: Response) -> bytes:
        self.last_response = response
        self._last_bytes = bytes(response)
        return self._last_bytes

    def _retransmit(self) -> list[Action]:
        return [] if self._last_bytes is None else [Transmit(self._last_bytes)]


class InviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.1: timers G (retransmit final), H (wait for ACK), I (absorb ACKs).

    Starts in Proceeding. After a 2xx it waits in Accepted (RFC 6026, timer L = 64*T1) so that
    retransmissions of the INVITE are absorbed instead of looking like a new request; the UAS
    core retransmits the 2xx itself until the ACK (which has its own branch) arrives.
    """

    def __init__(self, request: Request, transport: str, settings: TimerSettings) -> None:
        super().__init__(request, transport, settings)
        self.state = State.PROCEEDING

    def receive_request(self, request: Request, now: float) -> list[Action]:
        if request.method.upper() == "ACK":
            if self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                self._timers.clear()
                self._timers.arm("I", now + self.settings.timer_i(self.transport))
            return []
        if self.state in (State.PROCEEDING, State.COMPLETED):
            return self._retransmit()
        return []

    def send_response(self, response: Response, now: float) -> list[Action]:
        if self.state is not State.PROCEEDING:
            return []
        data = self._remember(response)
        code = response.status_code
        if code < 200:
            return [Transmit(data)]
        if code < 300:
            self.state = State.ACCEPTED
            self._timers.arm("L", now + self.settings.transaction_timeout)
            return [Transmit(data)]
        self.state = State.COMPLETED
        self._interval = self.settings.t1
        if not self.reliable:
            self._timers.arm("G", now + self._interval)
        self._timers.arm("H", now + self.settings.transaction_timeout)
        return [Transmit(data)]

    def _fire(self, name: str, now: float) -> list[Action]:
        if name == "G" and self.state is State.COMPLETED:
            self._interval = self.settings.next_interval(self._interval)
            self._timers.arm("G", now + self._interval)
            return self._retransmit()
        if name == "H" and self.state is State.COMPLETED:
            return [TimedOut(), *self._terminate()]
        if name in ("I", "L"):
            return self._terminate()
        return []


class NonInviteServerTransaction(ServerTransaction):
    """RFC 3261 §17.2.2: timer J (answer retransmitted requests after the final response)."""

    def __init__(self, request: Request, transport: str, settings: TimerSettings) -> None:
        super().__init__(request, transport, settings)
        self.state = State.TRYING

    def receive_request(self, request: Request, now: float) -> list[Action]:
        if self.state in (State.PROCEEDING, State.COMPLETED):
            return self._retransmit()
        return []

    def send_response(self, response: Response, now: float) -> list[Action]:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return []
        data = self._remember(response)
        if response.status_code < 200:
            self.state = State.PROCEEDING
            return [Transmit(data)]
        self.state = State.COMPLETED
        self._timers.arm("J", now + self.settings.timer_j(self.transport))
        return [Transmit(data)]

    def _fire(self, name: str, now: float) -> list[Action]:
        if name == "J":
            return self._terminate()
        return []


def build_non_2xx_ack(invite: Request, response: Response) -> Request:
    """The ACK a client transaction sends for a 300-699 response (§17.1.1.3).

    Same Request-URI, top Via (so the same branch), Call-ID, From, CSeq number and Route as the
    INVITE; To from the response (with the callee's tag).
    """
    headers = Headers()
    via_values = invite.headers.get_all("Via")
    if via_values:
        headers.add("Via", via_values[0])
    headers.add("Max-Forwards", "70")
    for name in ("From",):
        value = invite.headers.get(name)
        if value is not None:
            headers.add(name, value)
    to_value = response.headers.get("To") or invite.headers.get("To") or ""
    headers.add("To", to_value)
    headers.add("Call-ID", invite.headers.get("Call-ID") or "")
    cseq_number = (invite.headers.get("CSeq") or "1").split()[0]
    headers.add("CSeq", f"{cseq_number} ACK")
    for route in invite.headers.get_all("Route"):
        headers.add("Route", route)
    return Request("ACK", invite.uri, headers)

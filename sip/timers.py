"""SIP timer values (RFC 3261 §17 and table 4) as one immutable settings object.

Every timer of the transaction layer is derived from three base values:

* ``t1`` – round-trip time estimate (default 500 ms); timers A, B, E, F, G, H, J start from it;
* ``t2`` – the longest interval between retransmissions of a non-INVITE request or of an INVITE
  final response (default 4 s);
* ``t4`` – how long a message may stay in the network (default 5 s); timers I and K.

Over a reliable transport (TCP, TLS) nothing is retransmitted by the transaction layer, and the
timers that only absorb retransmissions (D, I, J, K) are zero.
"""

from __future__ import annotations

from dataclasses import dataclass

RELIABLE_TRANSPORTS = frozenset({"tcp", "tls", "ws", "wss"})


def is_reliable(transport: str) -> bool:
    """True for transports that never lose or duplicate messages (no retransmission timers)."""
    return transport.lower() in RELIABLE_TRANSPORTS


@dataclass(frozen=True)
class TimerSettings:
    """The three base timer values, in seconds; every other timer is computed from them."""

    t1: float = 0.5
    t2: float = 4.0
    t4: float = 5.0

    def __post_init__(self) -> None:
        if not (0 < self.t1 <= self.t2):
            raise ValueError("timer settings need 0 < t1 <= t2")
        if self.t4 <= 0:
            raise ValueError("timer settings need t4 > 0")

    @property
    def transaction_timeout(self) -> float:
        """64*T1: timers B, F, H and J, and how long a 2xx ACK is kept for retransmitted 2xx."""
        return 64 * self.t1

    def timer_d(self, transport: str) -> float:
        """How long an INVITE client transaction absorbs retransmitted final responses."""
        return 0.0 if is_reliable(transport) else max(32.0, self.transaction_timeout)

    def timer_i(self, transport: str) -> float:
        """How long an INVITE server transaction absorbs retransmitted ACKs."""
        return 0.0 if is_reliable(transport) else self.t4

    def timer_j(self, transport: str) -> float:
        """How long a non-INVITE server transaction answers retransmitted requests."""
        return 0.0 if is_reliable(transport) else self.transaction_timeout

    def timer_k(self, transport: str) -> float:
        """How long a non-INVITE client transaction absorbs retransmitted responses."""
        return 0.0 if is_reliable(transport) else self.t4

    def next_interval(self, interval: float, *, cap_at_t2: bool = True) -> float:
        """The retransmission interval after ``interval``: doubled, capped at T2 when asked.

        INVITE requests (timer A) double without cap; non-INVITE requests (timer E) and INVITE
        final responses (timer G) are capped at T2.
        """
        doubled = interval * 2
        return min(doubled, self.t2) if cap_at_t2 else doubled


class Deadlines:
    """Named deadlines (absolute times on the caller's clock) of one state machine."""

    def __init__(self) -> None:
        self._deadlines: dict[str, float] = {}

    def arm(self, name: str, deadline: float) -> None:
        """Set (or move) timer ``name`` to fire at ``deadline``."""
        self._deadlines[name] = deadline

    def cancel(self, name: str) -> None:
        """Disarm timer ``name`` if armed."""
        self._deadlines.pop(name, None)

    def clear(self) -> None:
        """Disarm every timer."""
        self._deadlines.clear()

    def armed(self, name: str) -> bool:
        """Whether timer ``name`` is armed."""
        return name in self._deadlines

    def earliest(self) -> float | None:
        """The earliest armed deadline, None when nothing is armed."""
        return min(self._deadlines.values(), default=None)

    def pop_due(self, now: float) -> str | None:
        """Disarm and return the earliest timer due at ``now``, or None."""
        due = [(deadline, name) for name, deadline in self._deadlines.items() if deadline <= now]
        if not due:
            return None
        _, name = min(due)
        del self._deadlines[name]
        return name

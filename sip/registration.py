"""Registration state per account, and the refresh and retry policy.

Refresh: a binding granted for ``expires`` seconds is refreshed after
``max(expires / 2, expires - 2 * 64 * T1)`` seconds. Two transaction timeouts (timer F, 32 s
with the default T1) before expiry leave time for a refresh that times out and for one retry
before the registrar drops us; short bindings are refreshed at half-life so a refresh never
races the expiry.

Retry: after a failure (error response, timeout, transport error, refused credentials) the
next attempt waits ``base * 2**(failures - 1)`` seconds, capped at ``maximum`` (RFC 5626 §4.5
uses the same shape): 30, 60, 120 ... 1800 s by default. A success resets the count.
"""

from __future__ import annotations

from dataclasses import dataclass

from sip.account import Account
from sip.transaction import ClientKey


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff of registration retries (seconds)."""

    base: float = 30.0
    maximum: float = 1800.0

    def delay(self, failures: int) -> float:
        """How long to wait after ``failures`` consecutive failures (>= 1)."""
        exponent = min(max(failures, 1) - 1, 32)
        return float(min(self.maximum, self.base * 2**exponent))


def refresh_delay(expires: int, transaction_timeout: float) -> float:
    """Seconds after a success at which a binding of ``expires`` seconds is refreshed."""
    return max(expires / 2, expires - 2 * transaction_timeout)


@dataclass
class Registration:
    """One account's registration: the Call-ID and From tag stay for the life of the binding
    (RFC 3261 §10.2.4), the CSeq grows by one per REGISTER."""

    account: Account
    call_id: str
    from_tag: str
    contact: str
    sequence: int = 0
    expires: int = 3600
    unregistering: bool = False
    active: bool = True
    transaction: ClientKey | None = None
    challenges_answered: int = 0
    stale_retry_used: bool = False
    nonce_count: int = 0
    failures: int = 0
    next_attempt_at: float | None = None

"""Random identifiers for Call-IDs, tags, branches and client nonces.

All come from :mod:`secrets` (128 bits for a Call-ID, 64 bits or more for the rest), so they are
unique across restarts and machines without any stored counter, and unguessable (a far end
cannot forge a BYE for a call it did not see).
"""

from __future__ import annotations

import secrets

MAGIC_COOKIE = "z9hG4bK"
"""Prefix of every RFC 3261 branch parameter (§8.1.1.7)."""


class IdentifierGenerator:
    """Makes the random identifiers a user agent needs."""

    def call_id(self) -> str:
        """A new Call-ID (32 hex digits)."""
        return secrets.token_hex(16)

    def tag(self) -> str:
        """A new From/To tag (16 hex digits)."""
        return secrets.token_hex(8)

    def branch(self) -> str:
        """A new Via branch: the RFC 3261 magic cookie and 96 random bits."""
        return MAGIC_COOKIE + secrets.token_hex(12)

    def cnonce(self) -> str:
        """A new digest client nonce."""
        return secrets.token_hex(8)

    def call_key(self) -> str:
        """A new opaque key for an incoming call (outbound calls use their Call-ID)."""
        return "in-" + secrets.token_hex(12)

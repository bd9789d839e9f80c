"""Cross-site request forgery defences for state-changing requests.

Two independent checks, both on every POST/PUT/PATCH/DELETE:

* the ``X-CSRF-Token`` header must equal the token stored with the server-side session (a page on
  another site can make the browser send our cookie, but cannot read the token to echo it);
* when the browser sends ``Origin``, it must be this server's own origin or one listed in the
  settings. Login has no session yet, so for it the Origin check (plus the JSON-only body, which
  a cross-site form cannot send without a CORS preflight) is the defence.
"""

from __future__ import annotations

import hmac
from collections.abc import Collection

from web.errors import Forbidden

STATE_CHANGING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_HEADER = "x-csrf-token"


def own_origin(scheme: str, host_header: str | None) -> str | None:
    """``scheme://host[:port]`` as a browser would write it for this request."""
    if not host_header:
        return None
    scheme = "https" if scheme in ("https", "wss") else "http"
    host = host_header.strip().lower()
    default_port = ":443" if scheme == "https" else ":80"
    if host.endswith(default_port):
        host = host[: -len(default_port)]
    return f"{scheme}://{host}"


def check_origin(origin: str | None, expected: str | None, allowed: Collection[str]) -> None:
    """Refuse a request whose ``Origin`` is neither this server nor an allowed one."""
    if origin is None:
        return
    normalised = origin.strip().lower().rstrip("/")
    if normalised == expected or normalised in allowed:
        return
    raise Forbidden("request from a foreign origin refused", code="origin_refused")


def check_csrf_token(presented: str | None, expected: str) -> None:
    """Refuse a request without the session's CSRF token (constant-time comparison)."""
    if not presented:
        raise Forbidden("missing X-CSRF-Token header", code="csrf_token_missing")
    if not hmac.compare_digest(presented.encode(), expected.encode()):
        raise Forbidden("X-CSRF-Token does not match the session", code="csrf_token_invalid")

"""HTTP Digest authentication as SIP uses it (RFC 2617, RFC 7616, RFC 8760, RFC 3261 §22).

Client side: :func:`parse_challenge` / :func:`choose_challenge` on WWW-Authenticate or
Proxy-Authenticate values, then :func:`build_authorization` for the Authorization or
Proxy-Authorization header. Server side: :meth:`Challenge.__str__` (with :func:`new_nonce`)
to challenge, :func:`parse_authorization` and :func:`verify_authorization` to check.

Parse failures and unsupported algorithms raise :class:`sip.errors.DigestError`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from sip.errors import DigestError, LocalProtocolError, MessageParseError
from sip.uri import quote, split_quoted, unquote

Algorithm = Literal["MD5", "MD5-sess", "SHA-256", "SHA-256-sess"]
ALGORITHMS: tuple[Algorithm, ...] = ("MD5", "MD5-sess", "SHA-256", "SHA-256-sess")
_PREFERENCE: dict[Algorithm, int] = {"SHA-256": 0, "SHA-256-sess": 1, "MD5": 2, "MD5-sess": 3}
_MAX_HEADER = 8192


def _canonical_algorithm(text: str) -> Algorithm:
    for algorithm in ALGORITHMS:
        if algorithm.lower() == text.strip().lower():
            return algorithm
    raise DigestError(f"unsupported digest algorithm {text[:40]!r}")


def _parse_parameters(value: str, context: str) -> dict[str, str]:
    """Split ``Digest a="x", b=y`` into the scheme check and lower-cased parameters."""
    if len(value) > _MAX_HEADER:
        raise DigestError(f"{context} too long")
    text = value.strip()
    scheme, rest = [*text.split(None, 1), "", ""][:2]
    if scheme.lower() != "digest":
        raise DigestError(f"{context} is not a Digest scheme: {text[:40]!r}")
    try:
        pieces = split_quoted(rest, ",")
    except MessageParseError as error:
        raise DigestError(str(error)) from None
    parameters: dict[str, str] = {}
    last_name = ""
    for piece in pieces:
        name, equals, raw = piece.partition("=")
        name = name.strip().lower()
        if not equals:
            if name and last_name == "qop":
                # qop=auth,auth-int sent without quotes: the comma split cut the list.
                parameters["qop"] += "," + name
                continue
            if not name:
                continue
            raise DigestError(f"invalid parameter {piece.strip()[:40]!r} in {context}")
        if not name or name in parameters:
            raise DigestError(f"missing or repeated parameter {name!r} in {context}")
        parameters[name] = unquote(raw)
        last_name = name
    return parameters


@dataclass(frozen=True)
class Challenge:
    """One Digest challenge from a WWW-Authenticate or Proxy-Authenticate header."""

    realm: str
    nonce: str
    algorithm: Algorithm = "MD5"
    qop: tuple[str, ...] = ()
    opaque: str | None = None
    stale: bool = False
    domain: str | None = None

    def __str__(self) -> str:
        """The header value a server sends (algorithm always explicit, RFC 8760)."""
        parts = [f"realm={quote(self.realm)}", f"nonce={quote(self.nonce)}"]
        if self.domain is not None:
            parts.append(f"domain={quote(self.domain)}")
        if self.opaque is not None:
            parts.append(f"opaque={quote(self.opaque)}")
        if self.stale:
            parts.append("stale=TRUE")
        parts.append(f"algorithm={self.algorithm}")
        if self.qop:
            parts.append(f"qop={quote(','.join(self.qop))}")
        return "Digest " + ", ".join(parts)


def parse_challenge(header_value: str) -> Challenge:
    """Parse a ``Digest ...`` challenge (quoted or token parameter values)."""
    parameters = _parse_parameters(header_value, "challenge")
    realm = parameters.get("realm")
    nonce = parameters.get("nonce")
    if realm is None or not nonce:
        raise DigestError("challenge without realm or nonce")
    qop = tuple(
        option.strip().lower() for option in parameters.get("qop", "").split(",") if option.strip()
    )
    return Challenge(
        realm=realm,
        nonce=nonce,
        algorithm=_canonical_algorithm(parameters.get("algorithm", "MD5")),
        qop=qop,
        opaque=parameters.get("opaque"),
        stale=parameters.get("stale", "").lower() == "true",
        domain=parameters.get("domain"),
    )


def choose_challenge(values: Iterable[str]) -> Challenge:
    """The challenge to answer among several headers: SHA-256 before MD5 (RFC 8760 §2.4).

    Values that are not Digest, malformed or use an unsupported algorithm are skipped; raises
    :class:`DigestError` when none is usable.
    """
    usable: list[Challenge] = []
    for value in values:
        try:
            usable.append(parse_challenge(value))
        except DigestError:
            continue
    if not usable:
        raise DigestError("no usable Digest challenge")
    return min(usable, key=lambda challenge: _PREFERENCE[challenge.algorithm])


def _hash(algorithm: Algorithm, text: str | bytes) -> str:
    data = text.encode("utf-8", "surrogateescape") if isinstance(text, str) else text
    if algorithm.startswith("SHA-256"):
        return hashlib.sha256(data).hexdigest()
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def compute_response(
    *,
    algorithm: Algorithm,
    username: str,
    realm: str,
    password: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None,
    nonce_count: str,
    cnonce: str,
    body: bytes = b"",
) -> str:
    """The ``response`` value (RFC 7616 §3.4.1); ``nonce_count`` is the 8-hex-digit string."""
    secret = _hash(algorithm, f"{username}:{realm}:{password}")
    if algorithm.endswith("-sess"):
        secret = _hash(algorithm, f"{secret}:{nonce}:{cnonce}")
    if qop == "auth-int":
        request_digest = _hash(algorithm, f"{method}:{uri}:{_hash(algorithm, body)}")
    else:
        request_digest = _hash(algorithm, f"{method}:{uri}")
    if qop is None:
        return _hash(algorithm, f"{secret}:{nonce}:{request_digest}")
    return _hash(algorithm, f"{secret}:{nonce}:{nonce_count}:{cnonce}:{qop}:{request_digest}")


def format_nonce_count(nonce_count: int) -> str:
    """``nc`` as 8 lower-case hex digits (``1`` -> ``00000001``)."""
    if not 0 < nonce_count <= 0xFFFFFFFF:
        raise LocalProtocolError(f"nonce count out of range: {nonce_count}")
    return f"{nonce_count:08x}"


def new_nonce() -> str:
    """A fresh unpredictable nonce or cnonce."""
    return secrets.token_hex(16)


def build_authorization(
    challenge: Challenge,
    *,
    method: str,
    uri: str,
    username: str,
    password: str,
    nonce_count: int = 1,
    cnonce: str | None = None,
    body: bytes = b"",
) -> str:
    """The Authorization (or Proxy-Authorization) value answering ``challenge``.

    Uses qop=auth when offered, auth-int when only that is offered, and the RFC 2069 form when
    the challenge has no qop. ``nonce_count`` counts requests sent with this nonce (start at 1).
    """
    if "auth" in challenge.qop:
        qop: str | None = "auth"
    elif "auth-int" in challenge.qop:
        qop = "auth-int"
    else:
        qop = None
    needs_cnonce = qop is not None or challenge.algorithm.endswith("-sess")
    cnonce_value = (cnonce or new_nonce()) if needs_cnonce else ""
    nc = format_nonce_count(nonce_count)
    response = compute_response(
        algorithm=challenge.algorithm,
        username=username,
        realm=challenge.realm,
        password=password,
        nonce=challenge.nonce,
        method=method,
        uri=uri,
        qop=qop,
        nonce_count=nc,
        cnonce=cnonce_value,
        body=body,
    )
    parts = [
        f"username={quote(username)}",
        f"realm={quote(challenge.realm)}",
        f"nonce={quote(challenge.nonce)}",
        f"uri={quote(uri)}",
        f"response={quote(response)}",
        f"algorithm={challenge.algorithm}",
    ]
    if needs_cnonce:
        parts.append(f"cnonce={quote(cnonce_value)}")
    if challenge.opaque is not None:
        parts.append(f"opaque={quote(challenge.opaque)}")
    if qop is not None:
        parts.append(f"qop={qop}")
        parts.append(f"nc={nc}")
    return "Digest " + ", ".join(parts)


@dataclass(frozen=True)
class Credentials:
    """A parsed Authorization / Proxy-Authorization value."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: Algorithm = "MD5"
    qop: str | None = None
    nonce_count: str | None = None
    cnonce: str | None = None
    opaque: str | None = None

    @property
    def nonce_count_value(self) -> int | None:
        """``nc`` as a number (for replay checks), ``None`` when absent."""
        return int(self.nonce_count, 16) if self.nonce_count is not None else None


def parse_authorization(header_value: str) -> Credentials:
    """Parse a ``Digest username=..., response=...`` value."""
    parameters = _parse_parameters(header_value, "authorization")
    missing = [
        name for name in ("username", "realm", "nonce", "uri", "response") if name not in parameters
    ]
    if missing:
        raise DigestError(f"authorization without {', '.join(missing)}")
    qop = parameters.get("qop")
    if qop is not None:
        qop = qop.lower()
        if qop not in ("auth", "auth-int"):
            raise DigestError(f"unsupported qop {qop[:20]!r}")
        nc = parameters.get("nc", "")
        if len(nc) != 8 or any(c not in "0123456789abcdefABCDEF" for c in nc):
            raise DigestError("qop without a valid nc")
        if not parameters.get("cnonce"):
            raise DigestError("qop without cnonce")
    return Credentials(
        username=parameters["username"],
        realm=parameters["realm"],
        nonce=parameters["nonce"],
        uri=parameters["uri"],
        response=parameters["response"].lower(),
        algorithm=_canonical_algorithm(parameters.get("algorithm", "MD5")),
        qop=qop,
        nonce_count=parameters.get("nc"),
        cnonce=parameters.get("cnonce"),
        opaque=parameters.get("opaque"),
    )


def verify_authorization(
    authorization: str | Credentials,
    *,
    method: str,
    password: str,
    realm: str,
    nonce: str | None = None,
    username: str | None = None,
    body: bytes = b"",
) -> bool:
    """Whether an Authorization value proves knowledge of ``password`` (constant-time compare).

    ``realm`` must match; ``nonce`` and ``username``, when given, must match too (the caller
    keeps the nonces it issued and checks ``nonce_count_value`` grows to stop replays).
    Malformed values raise :class:`DigestError`.
    """
    credentials = (
        authorization
        if isinstance(authorization, Credentials)
        else parse_authorization(authorization)
    )
    if credentials.realm != realm:
        return False
    if nonce is not None and not _same(credentials.nonce, nonce):
        return False
    if username is not None and credentials.username != username:
        return False
    expected = compute_response(
        algorithm=credentials.algorithm,
        username=credentials.username,
        realm=credentials.realm,
        password=password,
        nonce=credentials.nonce,
        method=method,
        uri=credentials.uri,
        qop=credentials.qop,
        nonce_count=credentials.nonce_count or "",
        cnonce=credentials.cnonce or "",
        body=body,
    )
    return _same(expected, credentials.response)


def _same(first: str, second: str) -> bool:
    return hmac.compare_digest(
        first.encode("utf-8", "surrogateescape"), second.encode("utf-8", "surrogateescape")
    )

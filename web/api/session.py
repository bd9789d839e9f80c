"""``/api/session``: log in (POST), who am I (GET), log out (DELETE).

Login answers the same 401 for an unknown login and a wrong password, 423 with the lock's end
while the login name is locked (unknown names lock the same way, so nothing is revealed), and 429
when the source address has too many failures. The cookie holds only a random token; the
session lives in the database (``dialer.sessions``).
"""

from __future__ import annotations

from starlette.responses import Response

from dialer.sessions import end_session, start_session
from dialer.users import authenticate
from web.api.representations import timestamp, user_json
from web.permissions import PUBLIC, SIGNED_IN
from web.routing import Call, Endpoint, expired_cookie, json_response
from web.validation import ObjectSchema, Text

LOGIN_BODY = ObjectSchema(
    {
        "login": Text(min_length=1, max_length=100),
        "password": Text(min_length=1, max_length=1024, strip=False),
        "one_time_code": Text(max_length=12, nullable=True, pattern=r"[0-9 ]*"),
    },
    required=frozenset({"login", "password"}),
)


async def log_in(call: Call) -> Response:
    settings = call.settings
    # Failed attempts update throttling counters and the audit log: keep them.
    call.commit_on_error = True
    user = await authenticate(
        call.database,
        settings.core,
        call.body.text("login"),
        call.body.text("password"),
        call.source_ip,
        call.now,
        call.body.optional_text("one_time_code"),
    )
    if call.session_token is not None:
        # A fresh token on every login: an old (possibly planted) cookie is never promoted.
        await end_session(call.database, call.session_token, call.now)
    token, csrf_token = await start_session(
        call.database, user, call.source_ip, call.now, settings.core
    )
    response = json_response({"user": user_json(user), "csrf_token": csrf_token})
    response.set_cookie(
        settings.session_cookie_name,
        token,
        max_age=int(settings.core.session_absolute_hours * 3600),
        path="/",
        secure=call.over_https,
        httponly=True,
        samesite="lax",
    )
    return response


async def current_session(call: Call) -> object:
    assert call.user is not None
    assert call.web_session is not None
    return {
        "user": user_json(call.user),
        "csrf_token": call.web_session.csrf_token,
        "expires_at": timestamp(call.web_session.expires_at),
    }


async def log_out(call: Call) -> Response:
    assert call.session_token is not None
    await end_session(call.database, call.session_token, call.now)
    cookie = expired_cookie(call.settings)
    return json_response({"logged_out": True}, headers={"Set-Cookie": cookie})


ENDPOINTS = (
    Endpoint(
        "POST",
        "/api/session",
        log_in,
        PUBLIC,
        "Log in with login and password; sets the session cookie, returns the CSRF token",
        tag="session",
        body=LOGIN_BODY,
        errors=(401, 403, 423, 429),
        csrf_exempt=True,
    ),
    Endpoint(
        "GET",
        "/api/session",
        current_session,
        SIGNED_IN,
        "The logged-in user",
        "session",
        read_only=True,
    ),
    Endpoint("DELETE", "/api/session", log_out, SIGNED_IN, "Log out", "session"),
)

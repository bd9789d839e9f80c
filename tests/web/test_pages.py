"""The UI's HTML shell and static files over HTTP: content types, the Content-Security-Policy,
no inline scripts, no third-party addresses, caching, refusal of paths outside web/static, and
both languages complete."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from web.pages import STATIC_DIRECTORY

SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


class _ScriptAudit(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[dict[str, str | None]] = []
        self.inline_handlers: list[str] = []
        self.inline_styles = 0
        self._in_script = False
        self.inline_code = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        self.inline_handlers.extend(name for name in attributes if name.startswith("on"))
        if "style" in attributes:
            self.inline_styles += 1
        if tag == "script":
            self.scripts.append(attributes)
            self._in_script = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_code += data.strip()


@SQLITE_ONLY
@pytest.mark.parametrize("path", ["/", "/login", "/contacts/42", "/self-test"])
async def test_every_page_address_serves_the_shell_under_a_strict_policy(
    anonymous: httpx.AsyncClient, path: str
) -> None:
    response = await anonymous.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    policy = response.headers["content-security-policy"]
    directives = dict(
        [*part.strip().split(" ", 1), ""][:2] for part in policy.split(";") if part.strip()
    )
    assert directives["script-src"] == "'self'"
    assert directives["default-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    assert "unsafe" not in policy
    assert directives["frame-ancestors"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"

    audit = _ScriptAudit()
    audit.feed(response.text)
    assert audit.scripts == [{"type": "module", "src": "/static/js/app.js"}]
    assert audit.inline_code == ""
    assert audit.inline_handlers == []
    assert audit.inline_styles == 0


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/static/js/app.js", "text/javascript; charset=utf-8"),
        ("/static/js/audio-processor.js", "text/javascript; charset=utf-8"),
        ("/static/css/app.css", "text/css; charset=utf-8"),
        ("/static/i18n/ru.json", "application/json"),
    ],
)
async def test_static_files_have_exact_content_types_and_revalidate(
    anonymous: httpx.AsyncClient, path: str, content_type: str
) -> None:
    response = await anonymous.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == (STATIC_DIRECTORY / path.removeprefix("/static/")).read_bytes()
    tag = response.headers["etag"]
    again = await anonymous.get(path, headers={"If-None-Match": tag})
    assert again.status_code == 304
    assert again.content == b""


@SQLITE_ONLY
@pytest.mark.parametrize(
    "path",
    [
        "/static/%2e%2e/pages.py",
        "/static/js/%2e%2e/%2e%2e/pages.py",
        "/static/..%2fpages.py",
        "/static/js/missing.js",
        "/static/.gitignore",
        "/static/js",
        "/static/index.htm",
        "/static/",
    ],
)
async def test_nothing_outside_the_static_files_is_served(
    anonymous: httpx.AsyncClient, path: str
) -> None:
    response = await anonymous.get(path)
    assert response.status_code == 404
    assert "import" not in response.text


def _static_texts() -> dict[Path, str]:
    return {
        path: path.read_text(encoding="utf-8")
        for path in STATIC_DIRECTORY.rglob("*")
        if path.suffix in (".html", ".js", ".css")
    }


def test_the_ui_loads_nothing_from_other_sites() -> None:
    for path, text in _static_texts().items():
        assert re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}/", text, re.IGNORECASE) is None, path
        assert re.search(r"\.(inner|outer)HTML\b|insertAdjacentHTML", text) is None, path
        assert "eval(" not in text, path


def test_every_message_the_ui_uses_exists_in_russian_and_english() -> None:
    languages = {
        code: json.loads((STATIC_DIRECTORY / "i18n" / f"{code}.json").read_text(encoding="utf-8"))
        for code in ("ru", "en")
    }
    assert languages["ru"].keys() == languages["en"].keys()
    for messages in languages.values():
        assert all(isinstance(text, str) and text.strip() for text in messages.values())
    used: set[str] = set()
    for path, text in _static_texts().items():
        used.update(re.findall(r"""\bt\(\s*["']([a-z_.]+)["']""", text))
        used.update(re.findall(r'data-i18n="([a-z_.]+)"', text))
        used.update(re.findall(r'"((?:help|error|login)\.[a-z_.]+)"', text))
        del path
    missing = sorted(key for key in used if key not in languages["en"])
    assert missing == []
    causes = ("busy", "no_answer", "declined", "invalid_number", "congestion", "unavailable")
    more = ("auth_failed", "timeout", "network_error", "media_timeout", "cancelled")
    ends = ("local_hangup", "remote_hangup", "interrupted", "browser_disconnected")
    for cause in (*causes, *more, *ends):
        assert f"cause.{cause}" in languages["ru"]
    assert languages["ru"]["login.wrong_credentials"] != languages["en"]["login.wrong_credentials"]

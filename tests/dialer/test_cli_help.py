"""``dialer --help`` and ``dialer COMMAND --help``: every command is listed and described without
loading the heavy libraries (SQLAlchemy, numpy, Vosk, ...), which is what keeps help instant;
those are loaded when a command runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from dialer.commands.exchange_commands import DUPLICATE_POLICIES, EXPORT_FORMATS
from dialer.commands.report_commands import REPORT_FORMATS
from dialer.exporting import ExportFormat
from dialer.importing.service import DuplicatePolicy
from dialer.reports import ReportFormat

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["sip", "db", "user", "audit", "backup", "restore", "import", "export"]
COMMANDS += ["recordings", "report", "worker", "serve"]
HELP_PAGES = [
    [],
    *([command] for command in COMMANDS),
    ["db", "upgrade"],
    ["user", "add"],
    ["user", "reset-password"],
    ["audit", "verify"],
    ["recordings", "purge"],
    ["report", "daily"],
    ["report", "rebuild"],
    ["sip", "call"],
    ["sip", "register"],
]
HEAVY = ["sqlalchemy", "alembic", "numpy", "vosk", "pydub", "openpyxl", "phonenumbers"]
HEAVY += ["starlette", "uvicorn", "argon2", "asyncpg", "aiosqlite"]

# Shows each help page in turn in one fresh interpreter, noting which heavy libraries are
# loaded after each.
PROBE = """
import contextlib, io, json, sys
from web.cli import main

pages, heavy = json.loads(sys.argv[1]), set(json.loads(sys.argv[2]))
for page in pages:
    shown = io.StringIO()
    with contextlib.redirect_stdout(shown):
        try:
            main([*page, "--help"])
        except SystemExit as exit:
            code = exit.code
    loaded = sorted({name.partition(".")[0] for name in sys.modules} & heavy)
    print(json.dumps({"page": page, "code": code, "help": shown.getvalue(), "loaded": loaded}))
"""


def test_help_pages_list_every_command_and_load_no_heavy_library() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(HELP_PAGES), json.dumps(HEAVY)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    pages = [json.loads(line) for line in done.stdout.splitlines()]
    assert [page["page"] for page in pages] == HELP_PAGES
    for page in pages:
        assert page["code"] == 0, page
        assert page["help"].startswith(f"usage: dialer {' '.join(page['page'])}".rstrip()), page
        assert page["loaded"] == [], page
    listed = pages[0]["help"]
    for command in COMMANDS:
        assert f"\n    {command} " in listed, command


def test_the_command_line_offers_every_format_and_duplicate_policy_the_library_has() -> None:
    assert tuple(export_format.value for export_format in ExportFormat) == EXPORT_FORMATS
    assert tuple(report_format.value for report_format in ReportFormat) == REPORT_FORMATS
    assert tuple(policy.value for policy in DuplicatePolicy) == DUPLICATE_POLICIES

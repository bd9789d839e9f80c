"""``dialer sip call`` and ``dialer sip register`` as a user runs them (a child process)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sip.testline import TestLine, load_prompt
from tests.sip import peers
from web.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[2]


async def dialer(
    *arguments: str, environment: dict[str, str] | None = None
) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "web.cli", *arguments,
        cwd=ROOT,
        env={**os.environ, **(environment or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def last_json(stdout: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


@pytest.mark.peers
async def test_call_to_a_busy_callee_reports_failed_busy(tmp_path: Path) -> None:
    async with peers.sipp("busy", tmp_path) as peer:
        code, stdout, stderr = await dialer(
            "sip", "call", "5551234", "--server", peer.uri_host, "--username", "alice"
        )
    assert code == 1, stderr
    result = last_json(stdout)
    assert (result["state"], result["cause"], result["sip_code"]) == ("failed", "busy", 486)
    assert result["talk_seconds"] == 0
    assert set(result) >= {
        "state", "cause", "sip_code", "ring_seconds", "talk_seconds",
        "packets_sent", "packets_received", "packets_lost",
    }  # fmt: skip


async def test_call_to_the_test_line_records_both_sides(tmp_path: Path) -> None:
    line = await TestLine.start()
    try:
        recording = tmp_path / "call.wav"
        code, stdout, stderr = await dialer(
            "sip", "call", "echo",
            "--server", f"127.0.0.1:{line.port}", "--username", "caller",
            "--hangup-after", "2", "--record", str(recording), "--dtmf", "12",
        )  # fmt: skip
    finally:
        await line.aclose()
    assert code == 0, stderr
    result = last_json(stdout)
    assert (result["state"], result["cause"], result["sip_code"]) == ("ended", "local_hangup", 200)
    assert result["packets_sent"] > 0
    assert result["packets_received"] > 0
    samples, channels, rate = peers.read_wav(recording)
    assert (channels, rate) == (2, 8000)
    right = samples[1::2]  # what we received: the prompt
    prompt = peers.g711_ulaw_round_trip(peers.pcm_to_samples(load_prompt())[: right.size])
    assert peers.chunked_correlation(prompt, right) >= 0.9
    assert np.abs(samples[0::2]).max() == 0  # we sent nothing but silence (DTMF is not recorded)


def test_unknown_account_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    accounts = tmp_path / "accounts.toml"
    accounts.write_text('[accounts.office]\nhost = "127.0.0.1"\nusername = "alice"\n')
    monkeypatch.setenv("DIALER_SIP_ACCOUNTS", str(accounts))
    code = cli_main(["sip", "call", "100", "--account", "home"])
    output = capsys.readouterr()
    assert code == 2
    assert "accounts.home" in output.err
    assert output.out == ""


def test_invalid_setting_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    accounts = tmp_path / "accounts.toml"
    accounts.write_text('[accounts.office]\nhost = "127.0.0.1"\nusername = "a"\nport = "x"\n')
    code = cli_main(["sip", "register", "--account", "office", "--accounts", str(accounts)])
    assert code == 2
    assert "accounts.office.port" in capsys.readouterr().err


def test_missing_account_options_are_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["sip", "call", "100"]) == 2
    assert "account" in capsys.readouterr().err
    assert cli_main(["sip", "call", "100", "--server", "h:99999", "--username", "u"]) == 2
    assert "server" in capsys.readouterr().err


@pytest.mark.peers
async def test_register_reports_success_and_wrong_password(tmp_path: Path) -> None:
    async with peers.kamailio(tmp_path, [peers.SipUser("alice", "wonderland")]) as proxy:
        server = f"127.0.0.1:{proxy.port}"
        good, bad = await asyncio.gather(
            dialer("sip", "register", "--server", server, "--username", "alice",
                   "--password", "wonderland"),
            dialer("sip", "register", "--server", server, "--username", "alice",
                   "--password", "guess"),
        )  # fmt: skip
    assert good[0] == 0, good[2]
    assert last_json(good[1])["registered"] is True
    assert bad[0] == 1, bad[2]
    assert last_json(bad[1])["cause"] == "auth_failed"

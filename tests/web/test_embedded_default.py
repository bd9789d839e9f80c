"""``dialer serve`` with no configuration at all is a working product: run as a user runs it
(a child process, only DIALER_DATA_DIR set), it makes its database, shows the admin's password
once, lists demo contacts, and a call to one rings the built-in test line, which answers."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.server import first_start_credentials, signed_in, start_server, wait_for_call


async def test_first_and_second_start_of_the_embedded_default(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first_log = tmp_path / "first.log"
    server = await start_server(data_dir, first_log)
    try:
        login, password = first_start_credentials(server.console())
        assert login == "admin"
        assert len(password) >= 12
        async with signed_in(server.base_url, login, password) as admin:
            contacts = (await admin.get("/api/contacts")).json()
            assert contacts["total"] >= 3
            demo = contacts["items"][0]
            assert "demo" in demo["tags"]
            assert demo["shared"] is True
            names = sorted(item["name"] for item in contacts["items"])

            placed = await admin.post(
                "/api/calls", json={"contact_id": demo["id"], "audio_leg": "browser"}
            )
            assert placed.status_code == 201, placed.text
            call_id = placed.json()["call_id"]
            answered = await wait_for_call(admin, call_id, states=("answered", "ended", "failed"))
            assert answered["state"] == "answered", answered
            assert answered["contact_id"] == demo["id"]
            assert answered["sip_code"] == 200
            hung_up = await admin.post(f"/api/calls/{call_id}/hangup")
            assert hung_up.status_code == 202
            ended = await wait_for_call(admin, call_id, states=("ended", "failed"))
            assert (ended["state"], ended["end_cause"]) == ("ended", "local_hangup")
            listed = (await admin.get("/api/calls", params={"contact_id": demo["id"]})).json()
            assert [item["id"] for item in listed["items"]] == [call_id]
    finally:
        await server.stop()
    # uvicorn ends by re-raising SIGTERM; what matters is that the shutdown ran to the end.
    assert "Application shutdown complete" in server.console()
    # The password is shown on standard error only, and stored nowhere: not on standard output,
    # not in the database, not anywhere in the data directory.
    assert password not in first_log.with_suffix(".stdout").read_text(encoding="utf-8")
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path

    second_log = tmp_path / "second.log"
    again = await start_server(data_dir, second_log)
    try:
        assert "password:" not in again.console()
        async with signed_in(again.base_url, login, password) as admin:
            contacts = (await admin.get("/api/contacts")).json()
            assert sorted(item["name"] for item in contacts["items"]) == names
    finally:
        await again.stop()

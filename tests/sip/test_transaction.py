"""RFC 3261 §17 transaction timers and retransmission absorption, on a fake clock."""

from __future__ import annotations

import pytest

from sip.message import Request, Response, build_response, parse_message
from sip.timers import TimerSettings
from sip.transaction import (
    Action,
    Deliver,
    InviteClientTransaction,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    State,
    Terminated,
    TimedOut,
    Transmit,
    TransportFailed,
    server_key,
)

SETTINGS = TimerSettings()


def request(method: str, branch: str = "z9hG4bKtest1") -> Request:
    data = (
        f"{method} sip:bob@192.0.2.2 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 192.0.2.1:5060;branch={branch};rport\r\n"
        "Max-Forwards: 70\r\n"
        "From: <sip:alice@192.0.2.1>;tag=aaa\r\n"
        "To: <sip:bob@192.0.2.2>\r\n"
        "Call-ID: call-1\r\n"
        f"CSeq: 1 {method}\r\n"
        "Route: <sip:proxy.example;lr>\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()
    message = parse_message(data)
    assert isinstance(message, Request)
    return message


def response_to(req: Request, status: int) -> Response:
    return build_response(req, status, to_tag="bbb")


def transmissions(actions: list[Action]) -> list[bytes]:
    return [action.data for action in actions if isinstance(action, Transmit)]


AnyTransaction = (
    InviteClientTransaction
    | NonInviteClientTransaction
    | InviteServerTransaction
    | NonInviteServerTransaction
)


def run_clock(transaction: AnyTransaction, until: float) -> list[tuple[float, Action]]:
    """Fire the transaction's timers up to ``until``; return (time, action) pairs."""
    fired: list[tuple[float, Action]] = []
    while (deadline := transaction.next_timer()) is not None and deadline <= until:
        fired.extend((deadline, action) for action in transaction.handle_timers(deadline))
    return fired


def test_timer_a_doubles_until_timer_b_times_out_at_64_t1() -> None:
    invite = request("INVITE")
    transaction = InviteClientTransaction(invite, "udp", SETTINGS)
    assert transmissions(transaction.start(0.0)) == [bytes(invite)]
    fired = run_clock(transaction, 100.0)
    retransmit_times = [time for time, action in fired if isinstance(action, Transmit)]
    # Timer A: T1, then doubling without cap (RFC 3261 §17.1.1.2) until timer B.
    assert retransmit_times == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]
    assert (32.0, TimedOut()) in fired
    assert transaction.terminated


def test_timer_b_follows_configured_t1() -> None:
    transaction = InviteClientTransaction(request("INVITE"), "udp", TimerSettings(t1=0.1))
    transaction.start(10.0)
    fired = run_clock(transaction, 100.0)
    assert [time for time, action in fired if isinstance(action, TimedOut)] == [pytest.approx(16.4)]


def test_invite_over_tcp_is_never_retransmitted_but_still_times_out() -> None:
    transaction = InviteClientTransaction(request("INVITE"), "tcp", SETTINGS)
    transaction.start(0.0)
    fired = run_clock(transaction, 100.0)
    assert not [action for _, action in fired if isinstance(action, Transmit)]
    assert [time for time, action in fired if isinstance(action, TimedOut)] == [32.0]


def test_provisional_stops_retransmission_and_timer_b() -> None:
    invite = request("INVITE")
    transaction = InviteClientTransaction(invite, "udp", SETTINGS)
    transaction.start(0.0)
    ringing = response_to(invite, 180)
    assert transaction.receive_response(ringing, 0.2) == [Deliver(ringing)]
    assert transaction.state is State.PROCEEDING
    assert transaction.next_timer() is None


def test_non_2xx_is_acked_with_same_branch_and_ack_repeated_for_retransmissions() -> None:
    invite = request("INVITE")
    transaction = InviteClientTransaction(invite, "udp", SETTINGS)
    transaction.start(0.0)
    busy = response_to(invite, 486)
    actions = transaction.receive_response(busy, 1.0)
    assert Deliver(busy) in actions
    [ack_bytes] = transmissions(actions)
    ack = parse_message(ack_bytes)
    assert isinstance(ack, Request)
    assert ack.method == "ACK"
    assert ack.uri == invite.uri
    assert ack.headers.get("Via") == invite.headers.get("Via")
    assert ack.headers.get("CSeq") == "1 ACK"
    assert ack.headers.get("To") == busy.headers.get("To")
    assert ack.headers.get_all("Route") == ["<sip:proxy.example;lr>"]
    # A retransmitted 486 gets the same ACK again and is not delivered twice.
    assert transaction.receive_response(busy, 2.0) == [Transmit(ack_bytes)]
    # Timer D: 32 s on UDP.
    assert transaction.next_timer() == 33.0
    assert transaction.handle_timers(33.0) == [Terminated()]


def test_timer_d_is_zero_over_tls() -> None:
    invite = request("INVITE")
    transaction = InviteClientTransaction(invite, "tls", SETTINGS)
    transaction.start(0.0)
    transaction.receive_response(response_to(invite, 404), 1.0)
    assert transaction.next_timer() == 1.0


def test_2xx_terminates_the_invite_client_transaction_without_ack() -> None:
    invite = request("INVITE")
    transaction = InviteClientTransaction(invite, "udp", SETTINGS)
    transaction.start(0.0)
    ok = response_to(invite, 200)
    assert transaction.receive_response(ok, 1.0) == [Deliver(ok), Terminated()]


def test_timer_e_doubles_to_t2_and_timer_f_times_out() -> None:
    transaction = NonInviteClientTransaction(request("OPTIONS"), "udp", SETTINGS)
    transaction.start(0.0)
    fired = run_clock(transaction, 100.0)
    retransmit_times = [time for time, action in fired if isinstance(action, Transmit)]
    assert retransmit_times[:6] == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5]
    assert retransmit_times[-1] == 31.5
    assert [time for time, action in fired if isinstance(action, TimedOut)] == [32.0]


def test_timer_e_runs_at_t2_after_a_provisional() -> None:
    options = request("OPTIONS")
    transaction = NonInviteClientTransaction(options, "udp", SETTINGS)
    transaction.start(0.0)
    transaction.receive_response(response_to(options, 100), 0.1)
    fired = run_clock(transaction, 10.0)
    assert [time for time, action in fired if isinstance(action, Transmit)] == [0.5, 4.5, 8.5]


def test_timer_k_absorbs_retransmitted_responses_then_zero_on_tcp() -> None:
    options = request("OPTIONS")
    transaction = NonInviteClientTransaction(options, "udp", SETTINGS)
    transaction.start(0.0)
    ok = response_to(options, 200)
    assert transaction.receive_response(ok, 1.0) == [Deliver(ok)]
    assert transaction.receive_response(ok, 1.5) == []
    assert transaction.next_timer() == 6.0  # T4
    over_tcp = NonInviteClientTransaction(options, "tcp", SETTINGS)
    over_tcp.start(0.0)
    over_tcp.receive_response(ok, 1.0)
    assert over_tcp.next_timer() == 1.0


def test_transport_failure_is_reported_once() -> None:
    transaction = NonInviteClientTransaction(request("BYE"), "udp", SETTINGS)
    transaction.start(0.0)
    assert transaction.transport_failed() == [TransportFailed(), Terminated()]
    assert transaction.transport_failed() == []


def test_invite_server_resends_provisional_then_final_with_timer_g_until_ack() -> None:
    invite = request("INVITE")
    transaction = InviteServerTransaction(invite, "udp", SETTINGS)
    trying = response_to(invite, 100)
    transaction.send_response(trying, 0.0)
    assert transmissions(transaction.receive_request(invite, 0.4)) == [bytes(trying)]
    busy = response_to(invite, 486)
    assert transmissions(transaction.send_response(busy, 1.0)) == [bytes(busy)]
    fired = run_clock(transaction, 9.0)
    # Timer G: T1 doubling to T2.
    assert [time for time, _ in fired] == [1.5, 2.5, 4.5, 8.5]
    assert transmissions(transaction.receive_request(invite, 9.0)) == [bytes(busy)]
    ack = request("ACK")
    assert transaction.receive_request(ack, 9.5) == []
    assert transaction.state is State.CONFIRMED
    assert transaction.next_timer() == 14.5  # timer I = T4
    assert transaction.receive_request(ack, 10.0) == []  # absorbed
    assert transaction.handle_timers(14.5) == [Terminated()]


def test_timer_h_gives_up_waiting_for_ack() -> None:
    invite = request("INVITE")
    transaction = InviteServerTransaction(invite, "udp", SETTINGS)
    transaction.send_response(response_to(invite, 603), 0.0)
    fired = run_clock(transaction, 100.0)
    assert (32.0, TimedOut()) in fired
    assert transaction.terminated


def test_invite_server_absorbs_invite_retransmissions_after_2xx() -> None:
    invite = request("INVITE")
    transaction = InviteServerTransaction(invite, "udp", SETTINGS)
    transaction.send_response(response_to(invite, 200), 0.0)
    assert transaction.state is State.ACCEPTED
    assert transaction.receive_request(invite, 1.0) == []
    assert transaction.handle_timers(32.0) == [Terminated()]


def test_timer_j_keeps_the_non_invite_response_for_retransmitted_requests() -> None:
    bye = request("BYE")
    transaction = NonInviteServerTransaction(bye, "udp", SETTINGS)
    assert transaction.receive_request(bye, 0.1) == []  # nothing to resend yet
    ok = response_to(bye, 200)
    assert transmissions(transaction.send_response(ok, 0.2)) == [bytes(ok)]
    assert transmissions(transaction.receive_request(bye, 1.0)) == [bytes(ok)]
    assert transaction.next_timer() == pytest.approx(32.2)
    over_tcp = NonInviteServerTransaction(bye, "tcp", SETTINGS)
    over_tcp.send_response(ok, 0.2)
    assert over_tcp.next_timer() == 0.2


def test_server_key_matches_ack_and_cancel_to_the_invite() -> None:
    invite = request("INVITE", branch="z9hG4bKsame")
    ack = request("ACK", branch="z9hG4bKsame")
    cancel = request("CANCEL", branch="z9hG4bKsame")
    assert server_key(ack) == server_key(invite)
    assert server_key(cancel) != server_key(invite)
    assert server_key(cancel, "INVITE") == server_key(invite)

"""The mapping from final SIP status codes to the call causes the dialer reports."""

from __future__ import annotations

import pytest

from sip.causes import CallCause, cause_for_status


@pytest.mark.parametrize(
    ("status", "cause"),
    [
        (486, CallCause.busy),
        (600, CallCause.busy),
        (603, CallCause.declined),
        (404, CallCause.invalid_number),
        (484, CallCause.invalid_number),
        (485, CallCause.invalid_number),
        (604, CallCause.invalid_number),
        (500, CallCause.congestion),
        (502, CallCause.congestion),
        (503, CallCause.congestion),
        (504, CallCause.timeout),
        (408, CallCause.no_answer),
        (480, CallCause.unavailable),
        (401, CallCause.auth_failed),
        (407, CallCause.auth_failed),
        (487, CallCause.cancelled),
        (488, CallCause.rejected),
        (403, CallCause.rejected),
        (699, CallCause.rejected),
        (380, CallCause.rejected),
    ],
)
def test_status_maps_to_cause(status: int, cause: CallCause) -> None:
    assert cause_for_status(status) is cause


def test_480_after_alerting_is_no_answer() -> None:
    assert cause_for_status(480, alerted=True) is CallCause.no_answer
    assert cause_for_status(486, alerted=True) is CallCause.busy


@pytest.mark.parametrize("status", [100, 180, 200, 299, 700])
def test_non_failures_are_refused(status: int) -> None:
    with pytest.raises(ValueError, match="not a failure"):
        cause_for_status(status)

"""Telephony: the SIP-backed call service behind ``dialer.call_control.CallControl``.

- :mod:`dialer.telephony.service`: :class:`CallService` (place, control and follow calls).
- :mod:`dialer.telephony.bridge`: the browser audio leg (smoothing buffer, far-end feed).
- :mod:`dialer.telephony.phone_leg`: the operator's own phone as the audio leg.
- :mod:`dialer.telephony.monitor_hub`: supervisors listening, whispering and barging on a call.
- :mod:`dialer.telephony.recording`: live stereo recording, compression, storage.
- :mod:`dialer.telephony.recovery`: start-up repair of what a crash left unfinished.
- :mod:`dialer.telephony.accounts`: which SIP account places the calls.
- :mod:`dialer.telephony.scheduling`: real-time scheduling of the server process.

Errors raised are those of :mod:`dialer.errors` (``Conflict``, ``DoNotCall``, ``NotFound``,
``PermissionDenied``, ``ValidationFailed``), and ``sip.errors.SchedulingError`` from
:mod:`dialer.telephony.scheduling`; this package defines none of its own.
"""

from dialer.telephony.accounts import AccountChoice, CallingAccount
from dialer.telephony.bridge import CallAudioBridge
from dialer.telephony.monitor_hub import MONITOR_MODES, CallMonitor, CallMonitorHub, MonitorMode
from dialer.telephony.service import CallService

__all__ = [
    "MONITOR_MODES",
    "AccountChoice",
    "CallAudioBridge",
    "CallMonitor",
    "CallMonitorHub",
    "CallService",
    "CallingAccount",
    "MonitorMode",
]

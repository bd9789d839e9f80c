"""The live floor: what supervisors watch while the operators work, and how they coach.

- :mod:`dialer.floor.board`: the wallboard (each operator's state, time in state, current
  contact, calls and talk time today): a snapshot query, then live events applied to it.
- :mod:`dialer.floor.monitoring`: listen, whisper and barge on a call in progress, audited.

Errors raised are those of :mod:`dialer.errors` (``PermissionDenied``, ``NotFound``,
``Conflict``, ``ValidationFailed``); this package defines none of its own.
"""

from dialer.floor.board import FloorBoard, OperatorLine, board_snapshot
from dialer.floor.monitoring import MonitorDesk, change_monitor_mode, start_monitoring

__all__ = [
    "FloorBoard",
    "MonitorDesk",
    "OperatorLine",
    "board_snapshot",
    "change_monitor_mode",
    "start_monitoring",
]

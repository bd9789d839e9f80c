"""Real-time scheduling of the server process, for ``dialer serve --realtime-priority``.

The media engine owns the mechanism (:mod:`sip.media.priority`); the web layer reaches it
through here, as it reaches the rest of telephony through :mod:`dialer`.
"""

from sip.errors import SchedulingError
from sip.media.priority import realtime_priority_range, use_realtime_scheduling

__all__ = ["SchedulingError", "realtime_priority_range", "use_realtime_scheduling"]

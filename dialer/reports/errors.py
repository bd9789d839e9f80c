"""Errors of the reports package.

Reports raise only the domain core's errors (``dialer.errors``); this module names the one
refinement they add::

    DialerError
    └── ValidationFailed
        └── ReportRangeInvalid    from/to out of order, too long, or timezone unknown
"""

from __future__ import annotations

from dialer.errors import ValidationFailed


class ReportRangeInvalid(ValidationFailed):
    """The report's date range or time zone cannot be used; ``field`` names which input."""

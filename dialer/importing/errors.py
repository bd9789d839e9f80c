"""Errors raised by contact import.

Problems with one row never raise: they end up in the row's line of the import report. Only a
problem with the whole file does::

    DialerError                      (dialer.errors)
    └── ImportFailed                 the file as a whole cannot be imported
        ├── UnreadableFile           not CSV/XLSX, an old binary .xls, a broken workbook
        ├── NoHeaderRow              no row looks like column titles and the file is empty
        └── InvalidMapping           a --mapping override names an unknown column or field
"""

from __future__ import annotations

from dialer.errors import DialerError


class ImportFailed(DialerError):  # noqa: N818 - named like the DialerError family
    """The file as a whole cannot be imported; nothing was written."""


class UnreadableFile(ImportFailed):
    """The bytes are not a CSV text or an XLSX workbook we can read."""


class NoHeaderRow(ImportFailed):
    """The file has no rows at all, so there are no column titles to map."""


class InvalidMapping(ImportFailed):
    """A user's column override names a column that is not in the file or an unknown field."""

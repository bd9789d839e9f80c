"""The test suite. Imported before any conftest: with ``DIALER_PURE_PYTHON=1`` the modules that
setup.py compiles are imported from their sources (see ``tests/compiled.py``)."""

from tests import compiled

if compiled.pure_python_requested():
    compiled.prefer_sources()

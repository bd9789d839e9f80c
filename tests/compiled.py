"""The modules that setup.py compiles with mypyc, as the tests see them.

An editable install (``pip install -e .``) builds each compiled module as an extension next to
its source (``sip/media/stream.cpython-311-x86_64-linux-gnu.so`` beside ``stream.py``), and
Python imports the extension rather than the source. Two consequences for the tests:

- an extension older than its source is a stale build: the tests would run the code as it was
  before the edit. :func:`stale_extensions` lists them; the root conftest stops the run with the
  command that rebuilds them;
- with ``DIALER_PURE_PYTHON=1`` in the environment, :func:`prefer_sources` puts a finder first
  on ``sys.meta_path`` that imports every such module from its source instead, which is how a
  machine without a C compiler runs the product: scripts/test runs the media and recording
  tests that way as well. It is all or nothing: compiled modules call each other natively, so
  one of them imported from its source next to compiled neighbours would not work.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dialer", "sip", "recordings", "web")
REBUILD_COMMAND = ".venv/bin/pip install --no-deps -e ."


def pure_python_requested() -> bool:
    """Whether the environment asks for the sources instead of the compiled modules."""
    return os.environ.get("DIALER_PURE_PYTHON") == "1"


def compiled_sources(root: Path = ROOT) -> dict[Path, Path]:
    """Each extension built in place in the project's packages -> the source it was built from."""
    pairs: dict[Path, Path] = {}
    for package in PACKAGES:
        for extension in (root / package).rglob("*.so"):
            source = extension.with_name(extension.name.split(".", 1)[0] + ".py")
            if source.exists():
                pairs[extension] = source
    return pairs


def stale_extensions(root: Path = ROOT) -> list[Path]:
    """Sources edited after their extension was built (sorted)."""
    return sorted(
        source
        for extension, source in compiled_sources(root).items()
        if source.stat().st_mtime > extension.stat().st_mtime
    )


def module_name(source: Path) -> str:
    """``sip/media/stream.py`` -> ``sip.media.stream``."""
    return ".".join(source.relative_to(ROOT).with_suffix("").parts)


class SourceFirstFinder(importlib.abc.MetaPathFinder):
    """Imports the given modules from their ``.py`` sources, ignoring the built extensions."""

    def __init__(self, sources: dict[str, Path]) -> None:
        self.sources = sources

    def find_spec(
        self,
        fullname: str,
        path: Sequence[str] | None,
        target: ModuleType | None = None,
    ) -> ModuleSpec | None:
        source = self.sources.get(fullname)
        if source is None:
            return None
        loader = importlib.machinery.SourceFileLoader(fullname, str(source))
        return importlib.util.spec_from_file_location(fullname, source, loader=loader)


def prefer_sources() -> None:
    """Import every compiled module of the project from its source from now on."""
    sources = {module_name(source): source for source in compiled_sources().values()}
    already = sorted(name for name in sources if name in sys.modules)
    if already:
        raise RuntimeError(f"imported before the switch to sources: {', '.join(already)}")
    sys.meta_path.insert(0, SourceFirstFinder(sources))

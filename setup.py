"""Build hook: compiles the media hot path to C with mypyc where a compiler is available.

The modules in ``COMPILED_MODULES`` are plain, type-checked Python; mypyc turns each into a C
extension with the same behaviour (it checks the annotations at run time), which saves about
a fifth of the CPU each RTP packet costs (bench/sip_load.py). Where the build cannot compile
them (no C compiler, or ``DIALER_PURE_PYTHON=1`` in the environment), the extensions are
skipped and the same modules run as Python. Everything else about the package is in
``pyproject.toml``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext
from setuptools.errors import CCompilerError, CompileError, ExecError, LinkError, PlatformError

COMPILED_MODULES = [
    "sip/media/clock.py",
    "sip/media/dtmf.py",
    "sip/media/jitter.py",
    "sip/media/rtp.py",
    "sip/media/stream.py",
    "recordings/wav_writer.py",
]


def compiled_extensions() -> list[Extension]:
    """The mypyc extensions, or none when the build should stay pure Python."""
    if os.environ.get("DIALER_PURE_PYTHON") == "1":
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:  # built without the build requirements (pyproject.toml)
        return []
    try:
        extensions: list[Extension] = mypycify(
            COMPILED_MODULES, opt_level="3", group_name="dialer_speedups"
        )
    except SystemExit:  # mypyc reports type errors (printed above) by exiting
        print("the media modules stay pure Python (slower): mypyc failed", file=sys.stderr)
        return []
    return extensions


class BuildAllOrNone(build_ext):
    """Builds the compiled modules, or none of them: they call each other natively, so a
    module left as Python beside compiled ones would not import. Where one fails to build, the
    others are removed again and every module stays Python."""

    def run(self) -> None:
        try:
            super().run()
        except (CCompilerError, CompileError, ExecError, LinkError, PlatformError) as error:
            for extension in self.extensions:
                Path(self.get_ext_fullpath(extension.name)).unlink(missing_ok=True)
            self.warn(f"the media modules stay pure Python (slower): {error}")


setup(ext_modules=compiled_extensions(), cmdclass={"build_ext": BuildAllOrNone})

"""The media hot path is compiled by setup.py, and the tests can run it as Python as well."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import compiled


def compiled_module_names() -> list[str]:
    """``COMPILED_MODULES`` of setup.py, as module names."""
    tree = ast.parse((compiled.ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "COMPILED_MODULES"
            for target in node.targets
        ):
            paths = ast.literal_eval(node.value)
            return [compiled.module_name(compiled.ROOT / path) for path in paths]
    raise AssertionError("setup.py has no COMPILED_MODULES")


@pytest.mark.parametrize("name", compiled_module_names())
def test_each_listed_module_runs_compiled_unless_pure_python_is_asked(name: str) -> None:
    module = importlib.import_module(name)
    origin = Path(str(module.__file__))
    if compiled.pure_python_requested():
        assert origin.suffix == ".py"
    else:
        # the README's test command installs a C compiler, so the build compiled them
        assert origin.suffix == ".so", f"{name} was not compiled: {origin}"


def test_pure_python_switch_imports_every_compiled_module_from_its_source() -> None:
    program = (
        "import sip.media.stream, recordings.wav_writer\n"
        "print(sip.media.stream.__file__)\n"
        "print(recordings.wav_writer.__file__)\n"
    )
    environment = {**os.environ, "DIALER_PURE_PYTHON": "1"}
    result = subprocess.run(
        [sys.executable, "-c", "import tests\n" + program],
        cwd=compiled.ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.split() == [
        str(compiled.ROOT / "sip" / "media" / "stream.py"),
        str(compiled.ROOT / "recordings" / "wav_writer.py"),
    ]


def test_a_source_edited_after_its_build_is_reported_stale(tmp_path: Path) -> None:
    package = tmp_path / "sip"
    package.mkdir()
    fresh_source = package / "fresh.py"
    edited_source = package / "edited.py"
    for source in (fresh_source, edited_source):
        source.write_text("VALUE = 1\n")
        os.utime(source, (1_000_000, 1_000_000))
        extension = source.with_name(source.stem + ".cpython-311-x86_64-linux-gnu.so")
        extension.write_bytes(b"")
        os.utime(extension, (2_000_000, 2_000_000))
    (package / "lonely.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")  # no source

    assert compiled.stale_extensions(tmp_path) == []
    os.utime(edited_source, (3_000_000, 3_000_000))
    assert compiled.stale_extensions(tmp_path) == [edited_source]

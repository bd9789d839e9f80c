"""Prepare a Vosk model directory with our own decoding options.

Vosk takes its options only from the model's ``conf/`` files, so to change them we lay out a
copy: small files copied, big ones (decoding graph, acoustic model) symlinked, and the config
rewritten. Uses:

* ``dither=0``: the small models ship with dithering on, so the same audio gives different
  transcripts run to run; with it off, results repeat (tests, re-transcription).
* ``beam`` / ``max_active``: a narrower search is faster at some cost in accuracy. The
  defaults here (``DEFAULT_BEAM``, ``DEFAULT_MAX_ACTIVE``) are the recommended batch settings
  measured with ``bench/transcribe.py`` (the packaged model has beam 10, max-active 3000).
* ``lattice_beam``: the lattice kept for word timings and confidences (model: 2.0); narrowing
  it saved nothing measurable, so it is left alone by default.
* ``frames_per_chunk``: frames the acoustic network computes at a time (Kaldi default 20).
  Vosk reads it, like the search options, from ``conf/model.conf`` (Kaldi's looped-computation
  options; the ``ivector/`` files hold no decoder options). Larger chunks cost less CPU but
  change the words: each chunk takes its i-vector from its last frame, so the speaker
  adaptation early in every region changes (measured in :mod:`recordings.transcription`); left
  at the model's value by default.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from recordings.errors import ModelNotFoundError

SYMLINK_ABOVE_BYTES = 1 << 20
DEFAULT_BEAM = 7.0
DEFAULT_MAX_ACTIVE = 1500


def _set_option(config: str, name: str, value: str) -> str:
    line = f"--{name}={value}"
    pattern = re.compile(rf"^--{re.escape(name)}=.*$", re.MULTILINE)
    if pattern.search(config):
        return pattern.sub(line, config)
    return config.rstrip("\n") + "\n" + line + "\n"


def prepare_model(
    source: Path,
    destination: Path,
    *,
    dither: float | None = 0.0,
    beam: float | None = DEFAULT_BEAM,
    max_active: int | None = DEFAULT_MAX_ACTIVE,
    lattice_beam: float | None = None,
    frames_per_chunk: int | None = None,
) -> Path:
    """Lay out a copy of the model at ``source`` in ``destination`` with the given options.

    ``None`` leaves an option as the model has it. Returns ``destination``.
    """
    if not (source / "conf" / "model.conf").is_file():
        raise ModelNotFoundError(f"no Vosk model at {source}")
    destination.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.rglob("*")):
        target = destination / path.relative_to(source)
        if path.is_dir():
            target.mkdir(parents=True, exist_ok=True)
        elif path.stat().st_size > SYMLINK_ABOVE_BYTES:
            target.unlink(missing_ok=True)
            target.symlink_to(path.resolve())
        else:
            target.unlink(missing_ok=True)
            shutil.copyfile(path, target)
    features = destination / "conf" / "mfcc.conf"
    if dither is not None:
        text = features.read_text(encoding="utf-8") if features.exists() else ""
        features.write_text(_set_option(text, "dither", f"{dither:g}"), encoding="utf-8")
    decoding = destination / "conf" / "model.conf"
    text = decoding.read_text(encoding="utf-8")
    if beam is not None:
        text = _set_option(text, "beam", f"{beam:g}")
    if max_active is not None:
        text = _set_option(text, "max-active", str(max_active))
    if lattice_beam is not None:
        text = _set_option(text, "lattice-beam", f"{lattice_beam:g}")
    if frames_per_chunk is not None:
        text = _set_option(text, "frames-per-chunk", str(frames_per_chunk))
    decoding.write_text(text, encoding="utf-8")
    return destination

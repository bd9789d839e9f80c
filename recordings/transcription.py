"""Offline transcription of a stereo call recording with Vosk, one call side at a time.

* One :class:`SpeechModel` per process: loading the model costs seconds and hundreds of MB,
  and a Vosk model is safe to share between recognisers in several threads.
* Each channel (left = operator, right = customer) is transcribed on its own: the 8 kHz
  audio is cut into speech regions by :mod:`recordings.silence`, only those are resampled to
  the model's rate (``--sample-frequency`` in ``conf/mfcc.conf``, 16000 when absent) and fed to
  a ``KaldiRecognizer`` with word timings on. Every region ends with ``FinalResult()``, so a
  region's words never run into the next one; inside a region Vosk's endpointer may cut
  utterances at pauses.
* The recogniser's clock counts only the audio fed to it; each region remembers where it
  started on that clock and in the call, so skipping silence does not shift word times.

Why recognisers are kept warm (measured, see ``bench/transcribe.py``): the small models decode
on a graph composed on the fly (``HCLr.fst`` o ``Gr.fst``), and each recogniser caches the
composed states it visits. A fresh recogniser is cheap to create (0.06 s) but its first tens of
seconds of audio cost two to three times the CPU of the same audio on a warm one (bench call,
beam 10: 8.9 s CPU on a fresh recogniser, 3.0-3.6 s on a warm one). ``FinalResult()`` drops the
decoder and the feature pipeline (so no speaker adaptation leaks from one region, channel or
call into the next) but keeps that cache. So the :class:`SpeechModel` keeps a small pool of
idle recognisers: a channel borrows one and gives it back when done, and the next channel or
call starts warm. Words and word times do not depend on whether the recogniser was warm
(tested); a confidence may differ in the second decimal (lattice ties). The cache grows slowly
(varied speech, beam 6: +85 MB in the first minute of audio fed, then a few MB a minute,
+220 MB after 20 minutes), so a recogniser is retired after ``recognizer_seconds`` of audio fed
over its life (default 15 minutes), at a region boundary, and at most
``max_idle_recognizers`` idle ones are kept.

Recommended configuration (the defaults), with :func:`recordings.model_setup.prepare_model`'s
defaults (dither 0, beam 7, max-active 1500): silence padding 0.15 s with hysteresis
(:mod:`recordings.silence`), both channels one after the other on one warm recogniser
(``parallel_channels=False``: best CPU per call; the job queue runs calls in parallel), and the
worker process on jemalloc (:mod:`dialer.transcripts.allocator`). Measured with
``bench/transcribe.py`` on its 60 s espeak-ng call, eight runs alternating with the code before
jemalloc (2-core machine shared with other work, load 6-16): 21.7-24.2x real time per core once
warm (median 22.6x) against 15.4-17.2x (median 16.6x) for glibc's malloc, and 12.4-13.6x
against 11.9-12.2x for the first call of a process; the previous defaults before that (beam 10,
padding 0.3 s, a fresh recogniser per channel and per 60 s) measured 6.5x. jemalloc mostly
saves glibc's ``malloc_consolidate``, ``_int_malloc`` and ``unlink_chunk`` (about 12 % of the
profile). It does not leave every word as it was: the decoder breaks some ties by where memory
lands, so on ten transcriptions (five calls, the defaults and the reference configuration) five
differed from glibc's in 1-4 words of about 85 (redrawing the line noise changes 20-35 %); the
bench call's transcript is the same to the last confidence, and each allocator repeats its own
results run to run. Measured and not adopted: feeding 8 kHz directly (Kaldi resamples inside; no
gain, numpy resampling costs 0.015 s per 36 s), ``SetWords(False)`` (within noise, and we need
word times), bigger chunks to ``AcceptWaveform`` (no gain), beam below 7 or max-active 700-1500
(no gain beyond the noise: the search is not what limits), two threads per call (same CPU once
warm, one more cold recogniser per process), Vosk's BatchModel (not built into the CPU wheel).

Measured on five calls (the bench call, the same call with two or three other draws of line
noise, the warm-up call) against the reference configuration, where redrawing the noise alone
leaves 0.67-0.81 of the words and 27-60 % of the turns as they were, and against the defaults:

* ``frames-per-chunk`` 99 or 150 (read by Vosk from ``conf/model.conf``; Kaldi's default is 20):
  7-16 % less CPU (one run at load 8), but 0.29-0.39 word agreement and no identical turn on
  every noise draw, and the character error against the spoken text better on the bench call
  (0.90 against 0.92-0.94) but worse on the warm-up call (0.94 against 0.87): it changes the
  words, not reliably for the better. Why: Kaldi's looped network takes the i-vector for a
  whole chunk from the chunk's last frame, and every region starts a fresh i-vector, so the
  chunk length changes the speaker adaptation of the first second of each region. Left off
  until checked on real calls.
* padding 0.10 s: 4 % less audio fed, but only 0.2-0.34 of the words agree with the defaults'.
* ``prune-interval`` 100: the same words on all five calls (confidences differ), CPU within the
  noise; ``determinize-max-delay`` 300: 99 % the same words, no gain; ``lattice-beam`` 1: 92-97 %
  the same words, no gain. ``frame-subsampling-factor`` and ``acoustic-scale`` belong to the
  trained model (3 and 1.0 for this chain model) and are not decoder settings.

Where the CPU of a call goes (60 s bench call, 35.8 s of speech regions fed over both channels,
warm recogniser; perf, glibc malloc): about 99 % inside Vosk. The lattice-incremental decoder
and the on-the-fly graph composition (``PruneForwardLinks``, the compose state table,
``LabelReachable``, token passing, the n-gram arcs) about 55 %, the acoustic network's matrix
products about 15 % (half of it OpenBLAS packing small matrices: 20-frame chunks), malloc and
free about 12 %; ``FinalResult`` was about 20 % of the total in an earlier profile (the last
chunk of each region and its lattice). Speech detection 0.004 s and resampling 0.02 s per
call. Reading a compressed recording back (:func:`read_stereo_recording`, one ffmpeg call)
costs about 0.3 s.

The result is a dialogue: utterances of both speakers sorted by start time. Transcripts of
phone audio are a search and coaching aid, not evidence (small models: 30-40 % WER).
"""

from __future__ import annotations

import json
import logging
import re
import struct
import subprocess
import threading
import wave
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from vosk import KaldiRecognizer, Model, SetLogLevel

from recordings.errors import CompressionError, ModelNotFoundError, TranscriptionError
from recordings.resample import resample
from recordings.silence import SilenceSettings, find_speech_regions

logger = logging.getLogger(__name__)

Speaker = Literal["operator", "customer"]
CALL_SAMPLE_RATE = 8000
DEFAULT_MODEL_SAMPLE_RATE = 16000
DEFAULT_MAX_IDLE_RECOGNIZERS = 4
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
    # Audio seconds a recogniser may decode over its life (across calls) before it is retired.
    recognizer_seconds: float = 900.0
    silence: SilenceSettings = field(default_factory=SilenceSettings)
    # True: the two channels of transcribe_stereo in two threads (half the wall time, but two
    # recognisers to keep warm); False: one after the other on one recogniser.
    parallel_channels: bool = False


def model_sample_rate(model_path: Path) -> int:
    """The sample rate a Vosk model expects, from its ``conf/mfcc.conf``."""
    config = model_path / "conf" / "mfcc.conf"
    try:
        match = _SAMPLE_FREQUENCY.search(config.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return DEFAULT_MODEL_SAMPLE_RATE
    return round(float(match.group(1))) if match else DEFAULT_MODEL_SAMPLE_RATE


@dataclass(slots=True)
class WarmRecognizer:
    """A recogniser and its clock: seconds of audio it has been fed over its life."""

    recognizer: KaldiRecognizer
    fed_seconds: float = 0.0


class SpeechModel:
    """A loaded Vosk model and its pool of idle warm recognisers; one per process, shared.

    ``max_idle_recognizers`` bounds the pool (each idle recogniser holds its graph cache, about
    100-250 MB); threads that find the pool empty create a fresh recogniser.
    """

    def __init__(
        self, model_path: Path, *, max_idle_recognizers: int = DEFAULT_MAX_IDLE_RECOGNIZERS
    ) -> None:
        if not (model_path / "am").is_dir() and not (model_path / "conf").is_dir():
            raise ModelNotFoundError(f"no Vosk model at {model_path}")
        SetLogLevel(-1)
        try:
            self.vosk_model = Model(str(model_path))
        except Exception as error:  # vosk raises bare Exception
            raise ModelNotFoundError(f"Vosk could not load {model_path}: {error}") from error
        self.path = model_path
        self.sample_rate = model_sample_rate(model_path)
        self.max_idle_recognizers = max_idle_recognizers
        self._idle: list[WarmRecognizer] = []
        self._idle_lock = threading.Lock()

    def recognizer(self) -> KaldiRecognizer:
        """A fresh recogniser with word timings on (one-best result, no partial words)."""
        try:
            recognizer = KaldiRecognizer(self.vosk_model, float(self.sample_rate))
        except Exception as error:  # vosk raises bare Exception
            raise TranscriptionError(f"could not create a recogniser: {error}") from error
        recognizer.SetWords(True)
        recognizer.SetMaxAlternatives(0)
        recognizer.SetPartialWords(False)
        return recognizer

    def take_recognizer(self, max_fed_seconds: float) -> WarmRecognizer:
        """An idle warm recogniser younger than ``max_fed_seconds``, or a fresh one.

        The caller owns it until :meth:`give_back`; it must end every stretch of audio with
        ``FinalResult()`` so the next user starts with a clean decoder.
        """
        with self._idle_lock:
            while self._idle:
                warm = self._idle.pop()
                if warm.fed_seconds < max_fed_seconds:
                    return warm
        return WarmRecognizer(self.recognizer())

    def give_back(self, warm: WarmRecognizer, max_fed_seconds: float) -> None:
        """Return a recogniser after its last ``FinalResult()``; old ones are dropped."""
        if warm.fed_seconds >= max_fed_seconds:
            return
        with self._idle_lock:
            if len(self._idle) < self.max_idle_recognizers:
                self._idle.append(warm)

    def idle_recognizers(self) -> int:
        with self._idle_lock:
            return len(self._idle)


class _ChannelDecoder:
    """Feeds speech regions of one channel to a borrowed recogniser and collects utterances."""

    def __init__(self, model: SpeechModel, speaker: Speaker, settings: TranscriptionSettings):
        self._model = model
        self._speaker = speaker
        self._settings = settings
        self._warm: WarmRecognizer | None = None
        # Where the current region starts on the recogniser's clock and in the call.
        self._region_fed_start = 0.0
        self._region_call_start = 0.0
        self.utterances: list[Utterance] = []

    def decode_region(self, speech: npt.NDArray[np.int16], call_start: float) -> None:
        if len(speech) == 0:
            return
        limit = self._settings.recognizer_seconds
        if self._warm is not None and self._warm.fed_seconds >= limit:
            self._warm = None  # retired at a region boundary: the pool drops it
        if self._warm is None:
            self._warm = self._model.take_recognizer(limit)
        warm = self._warm
        rate = self._model.sample_rate
        self._region_fed_start = warm.fed_seconds
        self._region_call_start = call_start
        piece = max(1, round(_FEED_SECONDS * rate))
        data = speech.astype("<i2", copy=False).tobytes()
        for offset in range(0, len(data), 2 * piece):
            chunk = data[offset : offset + 2 * piece]
            ended = warm.recognizer.AcceptWaveform(chunk)
            if ended:
                self._collect(warm.recognizer.Result())
        self._collect(warm.recognizer.FinalResult())
        warm.fed_seconds += len(speech) / rate

    def finish(self) -> None:
        """Give the recogniser back to the model's pool (after the last region)."""
        if self._warm is not None:
            self._model.give_back(self._warm, self._settings.recognizer_seconds)
            self._warm = None

    def _to_call_time(self, fed_time: float) -> float:
        # Region starts are whole samples and Vosk's times whole 30 ms frames, so a call time
        # has at most 6 decimals: rounding removes the float noise of a long-lived clock, and
        # the same audio gives the same times on a fresh or a warm recogniser.
        call_time = self._region_call_start + max(0.0, fed_time - self._region_fed_start)
        return round(call_time, 6)

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
    # Not reached when decoding raised: a recogniser in an unknown state is not reused.
    decoder.finish()
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
    """Decode a recording (our WAV, or its Ogg/MP3) to 8 kHz 16-bit stereo, shape ``(n, 2)``.

    Our own 8 kHz PCM WAVs are read directly. Anything else goes through one ``ffmpeg`` call
    that decodes, resamples to 8 kHz and writes 16-bit PCM to a pipe: no ``ffprobe``, no
    temporary WAV, no resampling in Python (measured on the 60 s bench call as Opus: 0.30 s of
    CPU, against 0.70 s for the pydub path it replaces, which probed twice, wrote a temporary
    WAV and resampled with ``audioop``).
    """
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
    channels, pcm = decode_with_ffmpeg(path, CALL_SAMPLE_RATE)
    if channels != 2:
        raise TranscriptionError(f"{path} has {channels} channels, expected 2")
    whole = len(pcm) - len(pcm) % 4
    return np.frombuffer(pcm[:whole], dtype="<i2").reshape(-1, 2).astype(np.int16)


def decode_with_ffmpeg(path: Path, sample_rate: int) -> tuple[int, bytes]:
    """Any audio file as ``(channels, interleaved 16-bit little-endian PCM at sample_rate)``.

    ffmpeg writes a WAV to the pipe (its header carries the channel count, so the file needs
    no separate probe); the data chunk's size is a placeholder on a pipe, so the samples are
    simply the bytes after the ``data`` header. G.711 WAVs decode as what they are.
    """
    command = [
        "ffmpeg", "-nostdin", "-v", "error", "-i", str(path),
        "-map", "0:a:0", "-map_metadata", "-1", "-fflags", "+bitexact",
        "-acodec", "pcm_s16le", "-ar", str(sample_rate), "-f", "wav", "-",
    ]  # fmt: skip
    try:
        completed = subprocess.run(command, capture_output=True, check=True)
    except subprocess.CalledProcessError as error:
        message = error.stderr.decode("utf-8", "replace").strip()
        raise CompressionError(f"ffmpeg could not decode {path}: {message}") from error
    except OSError as error:
        raise CompressionError(f"could not run ffmpeg on {path}: {error}") from error
    return _pcm_of_piped_wav(completed.stdout, path)


def _pcm_of_piped_wav(data: bytes, path: Path) -> tuple[int, bytes]:
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise CompressionError(f"ffmpeg gave no WAV for {path}")
    position = 12
    channels = 0
    while position + 8 <= len(data):
        chunk_id = data[position : position + 4]
        (chunk_size,) = struct.unpack_from("<I", data, position + 4)
        body = position + 8
        if chunk_id == b"data":
            if channels == 0:
                break
            return channels, data[body:]
        if chunk_id == b"fmt ":
            (channels,) = struct.unpack_from("<H", data, body + 2)
        position = body + chunk_size + chunk_size % 2
    raise CompressionError(f"ffmpeg gave a WAV without format or data for {path}")


def transcribe_recording(
    model: SpeechModel, path: Path, settings: TranscriptionSettings | None = None
) -> list[Utterance]:
    """The dialogue of the recording at ``path`` (blocking: run it in a worker)."""
    return transcribe_stereo(model, read_stereo_recording(path), settings)

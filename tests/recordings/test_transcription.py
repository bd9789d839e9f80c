"""Vosk transcription of a two-channel call built from espeak-ng Korean speech."""

from __future__ import annotations

import subprocess
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from recordings.compression import compress_recording
from recordings.errors import CompressionError, ModelNotFoundError, TranscriptionError
from recordings.model_setup import prepare_model
from recordings.transcription import (
    SpeechModel,
    TranscriptionSettings,
    Utterance,
    model_sample_rate,
    read_stereo_recording,
    transcribe_channel,
    transcribe_recording,
    transcribe_stereo,
)
from recordings.wav_writer import RecordingWriter, StereoRecorder
from tests.recordings.speech import SENTENCES, packaged_model_path, silence, speak

SLACK_SECONDS = 0.15  # word edges may sit in the quiet onset or tail of a spoken sentence


@dataclass(frozen=True)
class Turn:
    speaker: str
    start: float
    end: float


@dataclass(frozen=True)
class Call:
    stereo: npt.NDArray[np.int16]
    turns: list[Turn]


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> SpeechModel:
    directory = tmp_path_factory.mktemp("model") / "vosk-ko"
    return SpeechModel(prepare_model(packaged_model_path(), directory, dither=0.0))


def build_call(turns: list[tuple[str, str, float]]) -> Call:
    """Turns of (speaker, sentence, pause before it); the other side is silent meanwhile."""
    operator: list[npt.NDArray[np.int16]] = []
    customer: list[npt.NDArray[np.int16]] = []
    position = 0
    spans = []
    for speaker, sentence, pause in turns:
        speech = speak(sentence)
        gap = silence(pause)
        talking, listening = (operator, customer) if speaker == "operator" else (customer, operator)
        talking.extend([gap, speech])
        listening.extend([gap, np.zeros_like(speech)])
        start = position + len(gap)
        position = start + len(speech)
        spans.append(Turn(speaker, start / 8000, position / 8000))
    tail = silence(1.0)
    left = np.concatenate([*operator, tail])
    right = np.concatenate([*customer, tail])
    return Call(np.stack([left, right], axis=1), spans)


@pytest.fixture(scope="module")
def call() -> Call:
    # The last turn comes after 15 s of silence on both sides: skipped, but must keep its time.
    return build_call(
        [
            ("operator", SENTENCES[0], 1.0),
            ("customer", SENTENCES[1], 1.2),
            ("operator", SENTENCES[2], 1.5),
            ("customer", SENTENCES[3], 15.0),
        ]
    )


@pytest.fixture(scope="module")
def dialogue(model: SpeechModel, call: Call) -> list[Utterance]:
    return transcribe_stereo(model, call.stereo)


def assert_matches_turns(dialogue: list[Utterance], turns: list[Turn]) -> None:
    assert [utterance.speaker for utterance in dialogue] == [turn.speaker for turn in turns]
    for utterance, turn in zip(dialogue, turns, strict=True):
        assert utterance.text.strip()
        assert utterance.words
        assert turn.start - SLACK_SECONDS <= utterance.start < utterance.end
        assert utterance.end <= turn.end + SLACK_SECONDS
        for word in utterance.words:
            assert turn.start - SLACK_SECONDS <= word.start <= word.end <= turn.end + SLACK_SECONDS
            assert 0 <= word.confidence <= 1
        assert utterance.text == " ".join(word.text for word in utterance.words)


def test_one_utterance_per_sentence_labelled_by_channel(
    dialogue: list[Utterance], call: Call
) -> None:
    assert_matches_turns(dialogue, call.turns)


def test_dialogue_is_sorted_by_time_and_serialisable(dialogue: list[Utterance]) -> None:
    starts = [utterance.start for utterance in dialogue]
    assert starts == sorted(starts)
    plain = [utterance.as_dict() for utterance in dialogue]
    assert plain[0]["speaker"] == "operator"
    assert set(plain[0]["words"][0]) == {"word", "start", "end", "conf"}


def test_word_times_after_skipped_silence_stay_relative_to_the_call(
    dialogue: list[Utterance], call: Call
) -> None:
    last_turn = call.turns[-1]
    assert last_turn.start > 20
    assert dialogue[-1].start >= last_turn.start - SLACK_SECONDS


def test_fresh_recognisers_every_second_keep_the_same_turns(model: SpeechModel, call: Call) -> None:
    settings = TranscriptionSettings(recognizer_seconds=1.0)
    assert_matches_turns(transcribe_stereo(model, call.stereo, settings), call.turns)


def test_same_audio_gives_the_same_words_with_dither_off(
    model: SpeechModel, call: Call, dialogue: list[Utterance]
) -> None:
    again = transcribe_channel(model, np.ascontiguousarray(call.stereo[:, 0]), "operator")
    assert again == [utterance for utterance in dialogue if utterance.speaker == "operator"]


def drain_pool(model: SpeechModel) -> None:
    """Drop the model's idle recognisers: the next transcription starts from a fresh one."""
    while model.idle_recognizers():
        model.take_recognizer(float("inf"))


def words_and_times(dialogue: list[Utterance]) -> list[tuple[str, list[tuple[str, float, float]]]]:
    return [
        (utterance.speaker, [(word.text, word.start, word.end) for word in utterance.words])
        for utterance in dialogue
    ]


def test_a_warm_recogniser_gives_the_same_words_and_times_as_a_fresh_one(
    model: SpeechModel, call: Call
) -> None:
    drain_pool(model)
    fresh = transcribe_stereo(model, call.stereo)
    other_call = build_call([("customer", SENTENCES[2], 0.5), ("operator", SENTENCES[1], 0.6)])
    transcribe_stereo(model, other_call.stereo)  # warms the pooled recogniser on other speech
    assert model.idle_recognizers() == 1
    warm = transcribe_stereo(model, call.stereo)
    assert words_and_times(warm) == words_and_times(fresh)
    assert_matches_turns(warm, call.turns)


def test_the_pool_keeps_a_recogniser_per_concurrent_channel_and_retires_old_ones(
    model: SpeechModel, call: Call
) -> None:
    drain_pool(model)
    parallel = transcribe_stereo(model, call.stereo, TranscriptionSettings(parallel_channels=True))
    assert model.idle_recognizers() == 2
    assert words_and_times(parallel) == words_and_times(transcribe_stereo(model, call.stereo))
    # Recognisers that decoded more than their allowed life are not handed out again.
    short_lived = TranscriptionSettings(recognizer_seconds=1.0)
    assert model.take_recognizer(short_lived.recognizer_seconds).fed_seconds == 0.0
    assert model.idle_recognizers() == 0
    assert_matches_turns(transcribe_stereo(model, call.stereo, short_lived), call.turns)
    assert model.idle_recognizers() == 0


def test_the_pool_is_bounded(model: SpeechModel) -> None:
    drain_pool(model)
    taken = [model.take_recognizer(60.0) for _ in range(model.max_idle_recognizers + 1)]
    for warm in taken:
        model.give_back(warm, 60.0)
    assert model.idle_recognizers() == model.max_idle_recognizers
    drain_pool(model)


def test_silence_and_line_noise_give_nothing(model: SpeechModel) -> None:
    noise = np.random.default_rng(3).normal(0, 20, size=(8000 * 10, 2))  # about -64 dBFS
    assert transcribe_stereo(model, noise.astype(np.int16)) == []
    assert transcribe_stereo(model, np.zeros((8000 * 5, 2), dtype=np.int16)) == []


def test_recorded_and_compressed_call_is_transcribed(model: SpeechModel, tmp_path: Path) -> None:
    short = build_call([("customer", SENTENCES[0], 0.5), ("operator", SENTENCES[2], 1.0)])
    wav_path = tmp_path / "call.wav"
    with RecordingWriter(threads=1) as writer:
        recorder = StereoRecorder(wav_path, writer)
        frames = short.stereo[: len(short.stereo) - len(short.stereo) % 160]
        for slot, block in enumerate(frames.reshape(-1, 160, 2)):
            media_time = 800 + slot * 160
            recorder.write_frame("sent", block[:, 0].astype("<i2").tobytes(), media_time)
            recorder.write_frame("received", block[:, 1].astype("<i2").tobytes(), media_time)
        recorder.close().result(timeout=10)
    compressed = compress_recording(wav_path)
    dialogue = transcribe_recording(model, compressed.path)
    assert_matches_turns(dialogue, short.turns)


def test_missing_model_and_model_rate(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        SpeechModel(tmp_path / "nowhere")
    with pytest.raises(ModelNotFoundError):
        prepare_model(tmp_path / "nowhere", tmp_path / "copy")
    (tmp_path / "conf").mkdir()
    assert model_sample_rate(tmp_path) == 16000
    (tmp_path / "conf" / "mfcc.conf").write_text("--use-energy=false\n--sample-frequency=8000\n")
    assert model_sample_rate(tmp_path) == 8000


def test_prepared_model_has_our_options(tmp_path: Path) -> None:
    copy = prepare_model(packaged_model_path(), tmp_path / "m", dither=0, beam=8, max_active=2000)
    assert "--dither=0" in (copy / "conf" / "mfcc.conf").read_text().splitlines()
    decoding = (copy / "conf" / "model.conf").read_text().splitlines()
    assert "--beam=8" in decoding
    assert "--max-active=2000" in decoding
    assert "--beam=10.0" not in decoding
    source_mfcc = (packaged_model_path() / "conf" / "mfcc.conf").read_text()
    assert "dither" not in source_mfcc  # the installed model is untouched


def test_prepared_model_defaults_are_the_recommended_batch_search(tmp_path: Path) -> None:
    copy = prepare_model(packaged_model_path(), tmp_path / "m")
    decoding = (copy / "conf" / "model.conf").read_text().splitlines()
    assert "--beam=7" in decoding
    assert "--max-active=1500" in decoding
    assert "--dither=0" in (copy / "conf" / "mfcc.conf").read_text().splitlines()
    untouched = prepare_model(packaged_model_path(), tmp_path / "u", beam=None, max_active=None)
    assert "--beam=10.0" in (untouched / "conf" / "model.conf").read_text().splitlines()


def write_wav(path: Path, stereo: npt.NDArray[np.int16], rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(stereo.shape[1])
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(stereo.astype("<i2").tobytes())


def two_tones(seconds: float, rate: int) -> npt.NDArray[np.int16]:
    """440 Hz on the left, silence then 1000 Hz from half-way on the right."""
    time = np.arange(round(seconds * rate)) / rate
    left = 8000 * np.sin(2 * np.pi * 440 * time)
    right = np.where(time >= seconds / 2, 8000 * np.sin(2 * np.pi * 1000 * time), 0)
    return np.stack([left, right], axis=1).astype(np.int16)


def test_other_formats_are_read_at_8_khz_with_channels_and_timing_kept(tmp_path: Path) -> None:
    source = tmp_path / "wide.wav"
    write_wav(source, two_tones(4.0, 16000), rate=16000)
    mulaw = tmp_path / "mulaw.wav"
    subprocess.run(
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(source),
            "-ar",
            "8000",
            "-c:a",
            "pcm_mulaw",
            str(mulaw),
        ],
        check=True,
    )
    for path in (source, mulaw):
        stereo = read_stereo_recording(path)
        assert stereo.shape == (32000, 2)
        left, right = stereo[:, 0].astype(np.float64), stereo[:, 1].astype(np.float64)
        spectrum = np.abs(np.fft.rfft(left))
        assert np.fft.rfftfreq(len(left), 1 / 8000)[int(np.argmax(spectrum))] == pytest.approx(440)
        assert np.abs(right[: 16000 - 80]).max() < 300  # silent first half, not 8-bit noise
        onset = int(np.argmax(np.abs(right) > 4000)) / 8000
        assert onset == pytest.approx(2.0, abs=0.005)


def test_mono_and_broken_recordings_are_refused(tmp_path: Path) -> None:
    mono_wav = tmp_path / "mono.wav"
    write_wav(mono_wav, two_tones(1.0, 8000)[:, :1])
    mono_ogg = tmp_path / "mono.ogg"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(mono_wav), str(mono_ogg)], check=True)
    for path in (mono_wav, mono_ogg):
        with pytest.raises(TranscriptionError, match="1 channels"):
            read_stereo_recording(path)
    broken = tmp_path / "broken.ogg"
    broken.write_bytes(b"not audio at all" * 20)
    with pytest.raises(CompressionError):
        read_stereo_recording(broken)

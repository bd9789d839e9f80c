"""Compression to Ogg/Opus and MP3: stereo kept, duration right, verified before the WAV goes."""

from __future__ import annotations

import hashlib
import subprocess
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from pydub import AudioSegment

from recordings.compression import compress_recording, load_audio, probe_audio
from recordings.errors import CompressionError
from tests.audio import decode_stereo, spectral_correlation


def write_two_tone_wav(path: Path, seconds: float) -> None:
    """Left channel 440 Hz, right channel 1500 Hz, 8 kHz 16-bit."""
    time = np.arange(int(seconds * 8000)) / 8000
    left = 8000 * np.sin(2 * np.pi * 440 * time)
    right = 8000 * np.sin(2 * np.pi * 1500 * time)
    stereo = np.stack([left, right], axis=1).astype("<i2")
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(stereo.tobytes())


def dominant_frequency(samples: npt.NDArray[np.float64], rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[int(np.argmax(spectrum))])


def channel_frequencies(path: Path) -> tuple[float, float]:
    decoded = AudioSegment.from_file(str(path))
    samples = np.array(decoded.get_array_of_samples(), dtype=np.float64).reshape(-1, 2)
    return (
        dominant_frequency(samples[:, 0], decoded.frame_rate),
        dominant_frequency(samples[:, 1], decoded.frame_rate),
    )


@pytest.mark.parametrize(
    ("codec", "extension", "container", "max_kbps"),
    [("opus", ".ogg", "ogg", 28), ("mp3", ".mp3", "mp3", 40)],
)
def test_compressed_file_keeps_both_channels_and_duration(
    tmp_path: Path, codec: str, extension: str, container: str, max_kbps: int
) -> None:
    wav_path = tmp_path / "call-7.wav"
    write_two_tone_wav(wav_path, 6.0)
    result = compress_recording(wav_path, codec=codec)  # type: ignore[arg-type]

    assert result.path == tmp_path / f"call-7{extension}"
    assert not wav_path.exists()
    assert result.codec == codec
    assert result.container == container
    assert result.channels == 2
    assert result.duration_seconds == pytest.approx(6.0, abs=0.1)
    assert result.size_bytes == result.path.stat().st_size
    assert result.size_bytes * 8 / 6.0 / 1000 <= max_kbps
    assert result.sha256 == hashlib.sha256(result.path.read_bytes()).hexdigest()
    left, right = channel_frequencies(result.path)
    assert left == pytest.approx(440, abs=20)
    assert right == pytest.approx(1500, abs=20)
    assert not list(tmp_path.glob("*.tmp"))


def test_mu_law_wav_is_decoded_as_mu_law_not_8_bit(tmp_path: Path) -> None:
    pcm_path = tmp_path / "pcm.wav"
    write_two_tone_wav(pcm_path, 4.0)
    mulaw_path = tmp_path / "mulaw.wav"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(pcm_path), "-c:a", "pcm_mulaw", str(mulaw_path)],
        check=True,
    )
    assert probe_audio(mulaw_path).codec == "pcm_mulaw"
    assert len(load_audio(mulaw_path)) == 4000
    result = compress_recording(mulaw_path, codec="mp3", output_path=tmp_path / "out" / "m.mp3")
    assert result.path == tmp_path / "out" / "m.mp3"
    assert result.duration_seconds == pytest.approx(4.0, abs=0.1)
    left, right = channel_frequencies(result.path)
    assert left == pytest.approx(440, abs=20)
    assert right == pytest.approx(1500, abs=20)


def test_source_is_kept_when_it_is_not_audio(tmp_path: Path) -> None:
    wav_path = tmp_path / "broken.wav"
    wav_path.write_bytes(b"this is not a wav file at all" * 10)
    with pytest.raises(CompressionError):
        compress_recording(wav_path)
    assert wav_path.exists()
    assert not (tmp_path / "broken.ogg").exists()


def test_source_can_be_kept_on_request(tmp_path: Path) -> None:
    wav_path = tmp_path / "keep.wav"
    write_two_tone_wav(wav_path, 1.0)
    result = compress_recording(wav_path, remove_source=False)
    assert wav_path.exists()
    assert result.path.exists()


def test_each_side_keeps_to_its_own_channel_while_both_speak(tmp_path: Path) -> None:
    """Operator and customer at once (a sweep and its echo 100 ms later, as on a call through
    an echoing line): neither side leaks into the other's channel. Coupled Opus stereo, which
    libopus uses unless told otherwise, gave back a left channel half made of the right one."""
    time = np.arange(8000) / 8000
    phase = 2 * np.pi * (300 * time + (2700 / 2) * time**2)
    sweep = (6000 * np.sin(phase)).astype(np.int16)
    left = np.zeros(4 * 8000, dtype=np.int16)
    right = np.zeros_like(left)
    left[8000:16000] = sweep
    right[8800:16800] = sweep
    wav_path = tmp_path / "both.wav"
    with wave.open(str(wav_path), "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(np.stack([left, right], axis=1).astype("<i2").tobytes())
    result = compress_recording(wav_path)
    decoded_left, decoded_right = decode_stereo(result.path)
    assert spectral_correlation(sweep, decoded_left) >= 0.7
    assert spectral_correlation(sweep, decoded_right) >= 0.7

"""Call recording, compression, verification, retention and transcription.

Imports nothing from ``dialer``, ``web`` or ``sip``; callers hand it frames, paths and metadata.

* :mod:`recordings.wav_writer` - ``StereoRecorder`` writes a stereo 8 kHz WAV as frames arrive
  (operator left, far end right), crash-safe, through a shared background ``RecordingWriter``.
* :mod:`recordings.repair` - makes ``.wav.part`` files left by a crash playable at start-up.
* :mod:`recordings.compression` - Ogg/Opus or MP3 with pydub + ffmpeg, verified, hashed.
* :mod:`recordings.layout` - ``ROOT/YYYY/MM/DD/<safe name>.<ext>``, no path traversal.
* :mod:`recordings.verification` / :mod:`recordings.retention` - work from ``RecordingEntry``.
* :mod:`recordings.transcription` (+ :mod:`recordings.silence`, :mod:`recordings.resample`,
  :mod:`recordings.model_setup`) - Vosk per channel, a dialogue of timed utterances.
"""

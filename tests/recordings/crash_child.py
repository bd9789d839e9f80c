"""Child process for the crash test: records in real time and reports every frame it passed.

Usage: python -m tests.recordings.crash_child WAV_PATH

Writes one sent and one received frame every 20 ms (absolute deadlines) to a StereoRecorder and
prints the number of frame slots handed to the recorder after each, until it is killed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from recordings.wav_writer import RecordingWriter, StereoRecorder
from tests.recordings.frames import frame_for


def main() -> None:
    path = Path(sys.argv[1])
    writer = RecordingWriter(threads=1)
    recorder = StereoRecorder(path, writer)
    start = time.monotonic()
    slot = 0
    while True:
        deadline = start + slot * 0.020
        delay = deadline - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        media_time = slot * 160
        recorder.write_frame("received", frame_for(slot, "received"), media_time)
        recorder.write_frame("sent", frame_for(slot, "sent"), media_time)
        slot += 1
        sys.stdout.write(f"{slot}\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()

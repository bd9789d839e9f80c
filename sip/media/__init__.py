"""RTP media: packets, codecs, jitter buffer, DTMF, pacing and the per-call audio stream.

Typical use by the call layer::

    clock = MediaClock()                     # one per process, created in the running loop
    stream = await AudioStream.open(clock, "127.0.0.1", port_range=(20000, 29999))
    stream.set_remote(host, port, payload_type, telephone_event_payload)  # from the SDP
    stream.send(frame)                       # 320 bytes = 20 ms of 8 kHz 16-bit mono PCM
    async for frame in stream.frames(): ...  # what the far end says, one frame per tick
    stream.close()
"""

from sip.media.clock import MediaClock
from sip.media.codecs import FRAME_BYTES, PCMA, PCMU, SILENCE_FRAME, Codec
from sip.media.dtmf import DtmfDigit
from sip.media.ports import PortAllocator
from sip.media.stream import AudioStream, Direction, StreamStatistics

__all__ = [
    "FRAME_BYTES",
    "PCMA",
    "PCMU",
    "SILENCE_FRAME",
    "AudioStream",
    "Codec",
    "Direction",
    "DtmfDigit",
    "MediaClock",
    "PortAllocator",
    "StreamStatistics",
]

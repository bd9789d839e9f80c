"""RTP media: packets, codecs, jitter buffer, DTMF, pacing and the per-call audio stream."""

"""Package data of ``sip``: the test line prompt (prompt.wav, espeak-ng, 8 kHz mono 16-bit)."""

"""Call recording, compression, verification and transcription."""

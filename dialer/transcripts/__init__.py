"""Transcripts of call recordings and the recordings library.

- :mod:`dialer.transcripts.models`: the tables (jobs, transcripts, utterances, reviews);
- :mod:`dialer.transcripts.queue`: the durable job queue in the database (leases, retries);
- :mod:`dialer.transcripts.worker`: the ``dialer worker`` processes that run Vosk;
- :mod:`dialer.transcripts.store`: reading and writing transcripts and quality reviews;
- :mod:`dialer.transcripts.search`: the library search (filters plus full-text search).

Transcripts are a search and coaching aid, not evidence: phone-call WER is 30-40 %.
"""

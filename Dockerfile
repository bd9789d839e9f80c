FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg postgresql-client libjemalloc2 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml setup.py README.md ./
COPY dialer dialer
COPY sip sip
COPY recordings recordings
COPY web web
# the compiler is only needed to build the compiled media modules (setup.py)
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && pip install --no-cache-dir . \
    && apt-get purge -y --auto-remove gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --home /var/lib/dialer dialer \
    && mkdir -p /var/lib/dialer /var/lib/dialer-recordings \
    && chown dialer /var/lib/dialer /var/lib/dialer-recordings
USER dialer
EXPOSE 8000 5060/udp
CMD ["dialer", "serve", "--host", "0.0.0.0"]

FROM python:3.11-slim-bookworm
RUN apt-get update \
    && apt-get install -y --no-install-recommends ffmpeg postgresql-client libjemalloc2 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY dialer dialer
COPY sip sip
COPY recordings recordings
COPY web web
RUN pip install --no-cache-dir .
RUN useradd --system --home /var/lib/dialer dialer \
    && mkdir -p /var/lib/dialer /var/lib/dialer-recordings \
    && chown dialer /var/lib/dialer /var/lib/dialer-recordings
USER dialer
EXPOSE 8000 5060/udp
CMD ["dialer", "serve", "--host", "0.0.0.0"]

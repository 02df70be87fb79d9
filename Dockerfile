# syntax=docker/dockerfile:1
# PitWall: one image, engine or web by its command. Not built here (no Docker engine on the
# development machine): written and checked by reading.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH PIP_NO_CACHE_DIR=1
COPY pyproject.toml constraints.txt README.md ./
COPY app ./app
COPY pages ./pages
COPY engine ./engine
COPY benchmarks ./benchmarks
RUN pip install --upgrade pip && pip install -c constraints.txt .

FROM python:3.11-slim-bookworm AS runtime
# redis-server only for `pitwall up` (the embedded default); engine and web use PITWALL_REDIS_URL.
RUN apt-get update && apt-get install -y --no-install-recommends redis-server tini \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 pitwall
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The source tree lives at /app (pages/, assets/, models/, data/ are found next to engine/),
# installed in place over the dependencies the build stage resolved.
COPY pyproject.toml constraints.txt README.md ./
COPY app ./app
COPY pages ./pages
COPY engine ./engine
COPY benchmarks ./benchmarks
COPY assets ./assets
COPY models ./models
COPY data ./data
RUN /opt/venv/bin/pip install --no-deps --no-build-isolation -e /app
# Auth is on (the default): set PITWALL_SECRET, or the secret is created in the data volume;
# `docker run ... IMAGE user add NAME --role admin` adds a login there.
ENV PATH=/opt/venv/bin:$PATH \
    PITWALL_HTTP_HOST=0.0.0.0 PITWALL_DATA_DIR=/var/lib/pitwall \
    PITWALL_REPLAY_DATA=/app/data/grcup PITWALL_MODELS_DIR=/app/models \
    OMP_NUM_THREADS=1 PYTHONUNBUFFERED=1 \
    NUMBA_CACHE_DIR=/var/lib/pitwall/numba-cache
# The strategy simulator's compiled lap loop is cached on first use; /app belongs to root, so the
# cache lives in the writable data volume.
RUN mkdir -p /var/lib/pitwall && chown pitwall:pitwall /var/lib/pitwall
USER pitwall
VOLUME ["/var/lib/pitwall"]
EXPOSE 8050 20777/udp
ENTRYPOINT ["tini", "--", "pitwall"]
CMD ["web"]

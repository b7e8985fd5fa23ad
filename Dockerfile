# The project image: `iot` as a non-root user. BASE is any image with Python 3.11+ and pip on PATH
# (the container test builds a Debian stand-in locally: --build-arg BASE=localhost/…).
ARG BASE=python:3.11-slim
FROM ${BASE}
WORKDIR /app
COPY pyproject.toml README.md ./
COPY core core
COPY ingest ingest
COPY registry registry
COPY simulators simulators
COPY iot iot
RUN pip install --no-cache-dir . \
 && groupadd --gid 10001 iot \
 && useradd --uid 10001 --gid iot --home-dir /var/lib/iot --no-create-home --shell /usr/sbin/nologin iot \
 && install -d -o iot -g iot -m 0750 /var/lib/iot
# /var/lib/iot exists owned by iot, so a named volume mounted there starts out owned by iot too
# (Docker and podman copy the mount point's ownership into an empty volume): the spool is writable.
USER iot
ENV IOT_DATA_DIR=/var/lib/iot
ENTRYPOINT ["iot"]

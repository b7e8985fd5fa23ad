# Stand-in for python:3.11-slim, built on the local Debian base: Debian's python3 (3.11) in a venv
# on PATH, so the project's Dockerfile runs `pip install .` unchanged. The host's CA bundle is
# copied in because pip here may reach PyPI only through the host's TLS setup.
ARG DEBIAN=localhost/iot-test/debian:bookworm
FROM ${DEBIAN}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/*
COPY ca-certificates.crt /etc/ssl/certs/host-ca-certificates.crt
RUN python3 -m venv /opt/python
ENV PATH=/opt/python/bin:$PATH PIP_CERT=/etc/ssl/certs/host-ca-certificates.crt PIP_DISABLE_PIP_VERSION_CHECK=1

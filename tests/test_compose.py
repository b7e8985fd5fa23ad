"""docker-compose.yml's production rules, checked without containers (test_containers.py runs it).

These hold on any machine, so a change that breaks one fails here even where podman is missing.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from core.config import DEFAULT_MAX_PAYLOAD_BYTES, Settings
from tests.composefile import load

REPO = Path(__file__).resolve().parent.parent
COMPOSE = load(REPO / "docker-compose.yml")


def test_no_secret_in_the_file_or_in_a_url() -> None:
    # load() refuses ${VAR} interpolation: secrets are files under /run/secrets, never env-pasted
    for svc in COMPOSE.services.values():
        for key, value in svc.environment.items():
            if key.endswith("_URL"):
                assert urlsplit(value).password is None, (svc.name, key)
            assert not re.search(r"PASSWORD$|TOKEN$", key), f"{svc.name}.{key}: use a *_FILE or a secrets file"
        for secret in svc.secrets:
            assert secret in COMPOSE.secrets, (svc.name, secret)


def test_every_secret_is_written_by_make_secrets() -> None:
    script = (REPO / "deploy" / "make-secrets").read_text()
    for name, path in COMPOSE.secrets.items():
        assert path.parent == (REPO / "secrets").resolve(), name
        assert name in script, f"deploy/make-secrets does not write {name}"


def test_readiness_and_restarts() -> None:
    services = COMPOSE.services
    health = {name: " ".join(s.healthcheck or []) for name, s in services.items()}
    assert "pg_isready -h localhost" in health["postgres"]  # TCP: not the init server's socket
    assert "iot status" in health["ingest"]  # exit 1 while degraded
    assert "[ $? -eq 5 ]" in health["mosquitto"]  # healthy = refusing anonymous clients
    for name in ("postgres", "mosquitto", "influxdb", "mongodb", "ingest"):
        assert services[name].restart == "unless-stopped", name
    for name in COMPOSE.one_shots():
        assert services[name].restart is None, f"{name} is a one-shot"
    order = COMPOSE.start_order(list(services))
    assert order.index("migrate") < order.index("provision") < order.index("broker-auth") < order.index("mosquitto")
    assert order.index("mosquitto") < order.index("ingest") < order.index("simulator")


def test_the_spool_is_a_named_volume_on_the_image_data_dir() -> None:
    ingest = COMPOSE.services["ingest"]
    (spool,) = [m for m in ingest.volumes if m.named]
    assert spool.target == ingest.environment["IOT_DATA_DIR"] == "/var/lib/iot"
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"install -d -o iot -g iot .*/var/lib/iot", dockerfile)
    assert re.search(r"^USER iot$", dockerfile, re.M)
    assert re.search(r"^ARG BASE=", dockerfile, re.M)


def test_broker_refuses_packets_over_the_daemons_payload_limit() -> None:
    """deploy/mosquitto/mosquitto.conf caps packets at what the daemon reads whole (its payload limit
    plus header room), for the payload limit the compose file gives the daemon."""
    conf = (REPO / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    env = COMPOSE.services["ingest"].environment
    settings = Settings(max_payload_bytes=int(env.get("IOT_MAX_PAYLOAD_BYTES", DEFAULT_MAX_PAYLOAD_BYTES)))
    assert re.findall(r"^max_packet_size (\d+)$", conf, re.M) == [str(settings.max_packet_bytes)]


def test_broker_requires_credentials() -> None:
    conf = (REPO / "deploy" / "mosquitto" / "mosquitto.conf").read_text()
    assert re.search(r"^allow_anonymous false$", conf, re.M)
    assert re.search(r"^password_file /mosquitto/auth/passwd$", conf, re.M)
    assert re.search(r"^acl_file /mosquitto/auth/acl$", conf, re.M)
    assert COMPOSE.services["ingest"].environment["IOT_BROKER_URL"].startswith("mqtt://iot-ingest@")

"""The production shape in real containers: docker-compose.yml's services under podman.

Builds a Debian 12 base with debootstrap (cached as localhost/iot-test/debian:bookworm), the
project's own Dockerfile on it (``--build-arg BASE=…``), and Mosquitto, PostgreSQL and InfluxDB 1.x
images from Debian packages (tests/containers/). Services, environment, volumes, secrets,
entrypoints, healthchecks, restart and stop settings are read from docker-compose.yml; the test
starts them in dependency order itself and waits on each one's own healthcheck (podman runs
healthchecks only by hand here, and compose's depends_on conditions are not honoured by
podman-compose). What cannot be built here is substituted, and said so:

- ``influxdb:2.7`` → InfluxDB 1.x from Debian, the daemon reaching it through ``influxdb1://``
  (the same InfluxQL path 2.x/3.x serve on /query); the influxdb service's 2.x setup env is dropped.
- ``mongo:7`` → the embedded document engine (``IOT_DOCUMENTS_URL=embedded``, files in the
  daemon's volume).

Checked: the one-shots (migrate, provision, broker-auth) exit 0; the daemon runs as its non-root
user with a named volume for the spool; a simulator container with compose's IOT_* variables and
device credentials sends a fleet, and the stores hold exactly what the broker acknowledged
(readings per device and kind in InfluxDB, dead letters in PostgreSQL, documents in the embedded
engine); SIGTERM stops the daemon with exit code 0; with InfluxDB stopped, a second fleet is
spooled, the daemon is stopped and its container removed, and a new container on the same volume
replays the spool: counts exact again.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.composefile import ComposeFile, Service, load
from tests.podman import DEBIAN_BASE, Podman, PodmanError, have_podman, service_args
from tests.servers import wait_for

pytestmark = pytest.mark.containers

REPO = Path(__file__).resolve().parent.parent
HERE = REPO / "tests" / "containers"
IMAGES = {  # compose image -> stand-in built here from Debian packages
    "eclipse-mosquitto:2": "mosquitto",
    "postgres:15": "postgres",
    "influxdb:2.7": "influxdb1",
}
IOT_IMAGE = "localhost/iot-test/iot:latest"
SUBSTITUTED = {
    "influxdb": "influxdb:2.7 -> InfluxDB 1.x from Debian (no 2.x package); the daemon uses influxdb1://influxdb:8086/telemetry",
    "mongodb": "mongo:7 -> not run (no Debian package); the daemon uses the embedded document engine",
    "prometheus": "prometheus, grafana -> not run (no Debian package of Grafana; Prometheus is optional to ingestion); "
    "their files are checked by tests/test_dashboards.py",
}
NOT_RUN = ("mongodb", "simulator", "prometheus", "grafana")
TS_KINDS = ("telemetry", "metrics", "events")
DOC_KINDS = ("config", "firmware", "maintenance")


def _env_overrides(env: dict[str, str]) -> dict[str, str]:
    """The compose environment with the substitutions above applied."""
    out = dict(env)
    if "IOT_TIMESERIES_URL" in out:
        out["IOT_TIMESERIES_URL"] = "influxdb1://influxdb:8086/telemetry"
    if "IOT_DOCUMENTS_URL" in out:
        out["IOT_DOCUMENTS_URL"] = "embedded"
    return out


def _option(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


class Stack:
    """docker-compose.yml's services as podman containers, one name prefix for everything."""

    def __init__(self, podman: Podman, compose: ComposeFile, secret_files: dict[str, Path]) -> None:
        self.p, self.compose, self.secret_files = podman, compose, secret_files
        self.network = podman.network()
        self.volumes = {v: podman.volume(v) for v in compose.volumes}
        self.started: dict[str, str] = {}  # service -> container
        self.runs = 0

    def image(self, svc: Service) -> str:
        if svc.build:
            return IOT_IMAGE
        assert svc.image in IMAGES, f"no stand-in for image {svc.image}"
        return f"localhost/iot-test/{IMAGES[svc.image]}:latest"

    def args(self, svc: Service, environment: dict[str, str] | None = None) -> list[str]:
        health = svc.healthcheck
        if svc.name == "influxdb":  # the 2.x CLI's `influx ping` → 1.x's /ping
            health = ["CMD-SHELL", "curl -sf http://localhost:8086/ping"]
        volumes = dict(self.volumes)
        if svc.name == "influxdb":  # 1.x keeps its data elsewhere than 2.x
            svc = Service(**{**svc.__dict__, "volumes": [], "environment": {}})
            volumes = {}
        args = service_args(
            svc,
            network=self.network,
            environment=_env_overrides(svc.environment) if environment is None else environment,
            volumes=volumes,
            binds_root=self.compose.path.parent,
            secrets=self.secret_files,
            health=health,
        )
        if svc.name == "influxdb":
            args += ["-v", f"{self.volumes['influxdb-data']}:/var/lib/influxdb"]
        return args

    def start(self, name: str, timeout: float = 120) -> str:
        """Start a long-running service and wait until its healthcheck passes."""
        svc = self.compose.services[name]
        container = self.p.name(f"{name}-{self.runs}")
        self.runs += 1
        self.p.run(container, self.image(svc), self.args(svc), svc.command, detach=True)
        self.started[name] = container
        if svc.healthcheck:
            self.p.wait_healthy(container, timeout)
        return container

    def once(self, name: str, command: list[str] | None = None, timeout: float = 300) -> str:
        """Run a one-shot service to completion; its stdout; fails on a non-zero exit."""
        svc = self.compose.services[name]
        container = self.p.name(f"{name}-{self.runs}")
        self.runs += 1
        image, args = self.image(svc), self.args(svc)
        r = self.p.run(container, image, args, command or svc.command, detach=False, timeout=timeout)
        assert r.returncode == 0, f"{name} exited {r.returncode}:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
        return r.stdout

    def probe(self, devices: list[str], documents: bool = False) -> dict[str, Any]:
        """What the stores hold, read by tests/containers/count_stored.py inside the project image
        with the ingest service's settings (and its volume, for the embedded documents)."""
        svc = self.compose.services["ingest"]
        container = self.p.name(f"probe-{self.runs}")
        self.runs += 1
        args = [
            "--rm",
            "--network",
            self.network,
            "--entrypoint",
            "python",
            "-v",
            f"{HERE / 'count_stored.py'}:/probe/count_stored.py:ro",
        ]
        for k, v in _env_overrides(svc.environment).items():
            args += ["-e", f"{k}={v}"]
        for s in svc.secrets:
            args += ["-v", f"{self.secret_files[s]}:/run/secrets/{s}:ro"]
        if documents:
            (spool,) = [m for m in svc.volumes if m.named]
            args += ["-v", f"{self.volumes[spool.source]}:{spool.target}"]
        command = ["/probe/count_stored.py", ",".join(devices), *(["--documents"] if documents else [])]
        r = self.p.run(container, IOT_IMAGE, args, command, detach=False, timeout=120)
        self.p.containers.remove(container)  # --rm
        assert r.returncode == 0, r.stderr[-3000:]
        result: dict[str, Any] = json.loads(r.stdout)
        return result

    def status(self) -> dict[str, Any]:
        """`iot status --json` inside the daemon's container (exit 1 while degraded)."""
        r = self.p.exec(self.started["ingest"], "iot", "status", "--json", "--url", "http://127.0.0.1:9108")
        if r.returncode not in (0, 1) or not r.stdout.strip():
            raise PodmanError(f"iot status failed ({r.returncode}): {r.stderr[-1000:]}")
        result: dict[str, Any] = json.loads(r.stdout)
        return result


def _expected(manifests: list[dict[str, Any]]) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]], int]:
    readings: dict[str, dict[str, int]] = {}
    documents: dict[str, dict[str, int]] = {}
    for m in manifests:
        for d, entry in m["devices"].items():
            r = readings.setdefault(d, dict.fromkeys(TS_KINDS, 0))
            for k in TS_KINDS:
                r[k] += entry["readings"].get(k, 0)
            doc = documents.setdefault(d, dict.fromkeys(DOC_KINDS, 0))
            for k in DOC_KINDS:
                doc[k] += entry["documents"].get(k, 0)
    return readings, documents, sum(len(m["malformed"]) for m in manifests)


def _received(status: dict[str, Any]) -> int:
    """Messages the daemon has taken from the broker since it started (stored or dead-lettered)."""
    return int(
        sum(
            v
            for k, v in status["metrics"].items()
            if k.startswith(("iot_messages_received_total{", "iot_messages_dead_lettered_total{"))
        )
    )


@pytest.fixture
def podman(request: pytest.FixtureRequest) -> Iterator[Podman]:
    why = have_podman()
    if why:
        pytest.skip(why)
    p = Podman(prefix=f"iot-ct-{os.getpid()}")
    if not p.image_exists(DEBIAN_BASE) and shutil.which("debootstrap") is None:
        pytest.skip("debootstrap not found (needed once to build the Debian base image): apt-get install debootstrap")
    try:
        yield p
    finally:
        p.cleanup(keep_images=os.environ.get("IOT_TEST_KEEP_IMAGES") == "1")


def test_production_stack_in_containers(podman: Podman, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    t0 = time.monotonic()
    timings: dict[str, float] = {}

    def mark(what: str) -> None:
        timings[what] = round(time.monotonic() - t0, 1)

    compose = load(REPO / "docker-compose.yml")
    with capsys.disabled():
        print("\n[containers] substituted (cannot be built here):")
        for line in SUBSTITUTED.values():
            print(f"[containers]   {line}")

    # -- images: Debian base (cached), stand-ins from Debian packages, the project's Dockerfile --
    base = podman.debian_base()
    mark("debian base")
    context = tmp_path / "context"
    shutil.copytree(HERE, context)
    shutil.copy("/etc/ssl/certs/ca-certificates.crt", context / "ca-certificates.crt")
    for name in ("python", *IMAGES.values()):
        podman.build(f"localhost/iot-test/{name}:latest", context, context / f"{name}.Dockerfile", {"DEBIAN": base})
    mark("stand-in images")
    podman.build(IOT_IMAGE, REPO, REPO / "Dockerfile", {"BASE": "localhost/iot-test/python:latest"})
    mark("project image")
    # Docker gives an empty named volume the ownership of the image's directory at the mount point
    # (root when the image lacks it); podman chowns it to the container's user instead, which would
    # hide that. So the image itself must hold the spool's directory, owned by its non-root user.
    (spool,) = [m for m in compose.services["ingest"].volumes if m.named]
    owner = podman("run", "--rm", "--entrypoint", "stat", IOT_IMAGE, "-c", "%U %a", spool.target).stdout.split()
    assert owner[0] == "iot" and owner[1].startswith("7"), f"{spool.target} in the image: {owner}"

    # -- secrets: compose's files, here with URL-hostile characters (nothing may paste them into URLs)
    secret_dir = tmp_path / "secrets"
    secret_dir.mkdir()
    secret_files = {}
    for name in compose.secrets:
        path = secret_dir / name
        path.write_text("" if name == "iot_api_key" else f"p@ss:w/rd%?#{secrets.token_urlsafe(12)}")
        path.chmod(0o644)
        secret_files[name] = path
    stack = Stack(podman, compose, secret_files)

    # -- bring the stack up in dependency order, each service waited on by its own healthcheck --
    run_here = [n for n in compose.services if n not in NOT_RUN]
    order = compose.start_order(run_here)
    one_shots = compose.one_shots()
    for name in order:
        if name in one_shots:
            stack.once(name)
        else:
            stack.start(name)
        mark(f"up: {name}")
    ingest = stack.started["ingest"]
    assert podman.exec(ingest, "id", "-u").stdout.strip() not in ("", "0"), "the daemon must not run as root"
    assert podman("inspect", "--format", "{{.Config.User}}", ingest).stdout.strip() == "iot"

    # -- a fleet through the broker, with the device credentials provision wrote -----------------
    sim = compose.services["simulator"]
    devices = int(_option(sim.command, "--devices"))
    fleet = ["sim", "run", "--devices", str(devices), "--password-file", _option(sim.command, "--password-file")]
    fleet += ["--rate", "0", "--count", "25", "--malformed", "0.03", "--json", "--quiet"]
    first = json.loads(stack.once("simulator", [*fleet, "--seed", "1"]))
    assert first["unacked"] == 0 and not first["lost"]
    device_ids = sorted(first["devices"])
    readings, documents, malformed = _expected([first])
    assert sum(r["telemetry"] for r in readings.values()) > 0 and malformed > 0

    def stored_exactly(expect: dict[str, dict[str, int]], letters: int) -> bool:
        got = stack.probe(device_ids)
        return bool(got["readings"] == expect and got["dead_letters"] == letters)

    wait_for(lambda: stored_exactly(readings, malformed), 120, "the first fleet stored exactly", interval=1)
    mark("first fleet stored")

    # -- SIGTERM: a clean exit, and nothing extra afterwards ------------------------------------
    grace = compose.services["ingest"].stop_grace_s or 10
    assert podman.stop(ingest, grace) == 0, podman.logs(ingest)
    got = stack.probe(device_ids, documents=True)
    assert got == {"readings": readings, "dead_letters": malformed, "documents": documents}
    mark("SIGTERM exit 0, counts exact")

    # -- InfluxDB down: the second fleet is spooled in the named volume ----------------------------
    podman("start", ingest)
    podman.wait_healthy(ingest, 120)
    mark("daemon restarted")
    influx = stack.started["influxdb"]
    podman.stop(influx, 30)
    mark("influxdb stopped")
    second = json.loads(stack.once("simulator", [*fleet, "--seed", "2"]))
    assert second["unacked"] == 0 and not second["lost"]
    mark("second fleet sent")

    def spooled() -> bool:
        st = stack.status()
        h = st["health"]
        ts = h["stores"].get("timeseries", {})
        return bool(_received(st) == second["sent"] and h["unacked"] == 0 and ts.get("spooled_batches", 0) > 0)

    wait_for(spooled, 120, "the second fleet taken from the broker, its readings spooled", interval=1)
    mark("second fleet spooled")
    assert podman.stop(ingest, grace) == 0, podman.logs(ingest)
    mark("SIGTERM exit 0 with InfluxDB down")

    # -- a new daemon container on the same volume, InfluxDB back: the spool is replayed ----------
    podman("rm", ingest)
    podman.containers.remove(ingest)
    podman("start", influx)
    podman.wait_healthy(influx, 60)
    ingest = stack.start("ingest")
    readings, documents, malformed = _expected([first, second])
    wait_for(lambda: stored_exactly(readings, malformed), 120, "both fleets stored exactly", interval=1)
    assert podman.stop(ingest, grace) == 0, podman.logs(ingest)
    got = stack.probe(device_ids, documents=True)
    assert got == {"readings": readings, "dead_letters": malformed, "documents": documents}
    mark("spool replayed after restart, counts exact")

    with capsys.disabled():
        print(f"[containers] {sum(sum(r.values()) for r in readings.values())} readings, {malformed} dead letters")
        for what, at in timings.items():
            print(f"[containers] {at:7.1f}s  {what}")

"""podman for the container test: everything it creates carries one name prefix and is removed by
name afterwards (never "everything"). Readiness is waited on as a condition (a healthcheck run by
hand, since healthchecks need systemd timers to run by themselves), never a sleep.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.composefile import Service
from tests.servers import wait_for

CONTAINERS_CONF = Path(__file__).resolve().parent / "containers" / "containers.conf"
DEBIAN_BASE = "localhost/iot-test/debian:bookworm"  # kept across runs: debootstrap is the slow part


class PodmanError(RuntimeError):
    pass


def debian_mirror() -> str:
    """The apt mirror this machine uses (deb822 or one-line sources), else deb.debian.org."""
    for path in sorted(Path("/etc/apt/sources.list.d").glob("*.sources")):
        for line in path.read_text().splitlines():
            if line.startswith("URIs:") and "security" not in line:
                return line.split()[1]
    legacy = Path("/etc/apt/sources.list")
    if legacy.exists():
        for line in legacy.read_text().splitlines():
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "deb" and "security" not in parts[1]:
                return parts[1]
    return "http://deb.debian.org/debian"


@dataclass
class Podman:
    prefix: str
    containers: list[str] = field(default_factory=list)
    volumes: list[str] = field(default_factory=list)
    networks: list[str] = field(default_factory=list)
    images: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = {**os.environ, "CONTAINERS_CONF": os.environ.get("CONTAINERS_CONF", str(CONTAINERS_CONF))}

    # -- plumbing ------------------------------------------------------------------------------

    def __call__(
        self, *args: str, timeout: float = 120, check: bool = True, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        r = subprocess.run(
            ["podman", *args], capture_output=True, text=True, timeout=timeout, env=self.env, input=input
        )
        if check and r.returncode != 0:
            raise PodmanError(f"podman {' '.join(args[:3])} … exit {r.returncode}: {r.stderr.strip()[-2000:]}")
        return r

    def name(self, what: str) -> str:
        return f"{self.prefix}-{what}"

    # -- images --------------------------------------------------------------------------------

    def image_exists(self, tag: str) -> bool:
        return self("image", "exists", tag, check=False).returncode == 0

    def debian_base(self) -> str:
        """A minimal Debian 12 image made with debootstrap from this machine's mirror (cached)."""
        if self.image_exists(DEBIAN_BASE):
            return DEBIAN_BASE
        with tempfile.TemporaryDirectory(prefix="iot-debootstrap-") as tmp:
            rootfs = Path(tmp) / "rootfs"
            r = subprocess.run(
                ["debootstrap", "--variant=minbase", "bookworm", str(rootfs), debian_mirror()],
                capture_output=True,
                text=True,
                timeout=900,
            )
            if r.returncode != 0:
                raise PodmanError(f"debootstrap failed: {r.stderr.strip()[-2000:]}")
            for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
                for p in (rootfs / junk).glob("*"):
                    if p.is_file():
                        p.unlink()
            pipeline = f"set -o pipefail; tar -C {shlex.quote(str(rootfs))} -c . | podman import - {DEBIAN_BASE}"
            imp = subprocess.run(["bash", "-c", pipeline], capture_output=True, text=True, env=self.env, timeout=600)
            if imp.returncode != 0:
                raise PodmanError(f"podman import failed: {imp.stderr[-2000:]}")
        return DEBIAN_BASE

    def build(
        self, tag: str, context: Path, dockerfile: Path, build_args: dict[str, str], timeout: float = 900
    ) -> None:
        args = ["build", "-q", "-t", tag, "-f", str(dockerfile)]
        for k, v in build_args.items():
            args += ["--build-arg", f"{k}={v}"]
        self.images.append(tag)
        self(*args, str(context), timeout=timeout)

    # -- network, volumes, containers ------------------------------------------------------------

    def network(self) -> str:
        net = self.name("net")
        self("network", "create", net)
        self.networks.append(net)
        return net

    def volume(self, what: str) -> str:
        vol = self.name(what)
        self("volume", "create", vol)
        self.volumes.append(vol)
        return vol

    def run(
        self, name: str, image: str, args: Sequence[str], command: Sequence[str], *, detach: bool, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """``podman run`` a container named ``name`` (removed at cleanup); detached or to completion."""
        self.containers.append(name)
        return self(
            "run", *(["-d"] if detach else []), "--name", name, *args, image, *command, timeout=timeout, check=detach
        )

    def state(self, name: str) -> dict[str, object]:
        out = self("inspect", "--format", "{{json .State}}", name).stdout
        state: dict[str, object] = json.loads(out)
        return state

    def logs(self, name: str) -> str:
        r = self("logs", name, check=False)
        return (r.stdout + r.stderr)[-4000:]

    def healthy(self, name: str) -> bool:
        """Run the container's healthcheck once; a container that has exited fails loudly."""
        if self.state(name).get("Running") is not True:
            raise PodmanError(f"{name} is not running:\n{self.logs(name)}")
        return self("healthcheck", "run", name, check=False, timeout=60).returncode == 0

    def wait_healthy(self, name: str, timeout: float) -> float:
        t0 = time.monotonic()
        try:
            wait_for(lambda: self.healthy(name), timeout, f"{name} to be healthy", interval=0.5)
        except TimeoutError as e:
            raise PodmanError(f"{e}\n{self.logs(name)}") from None
        return time.monotonic() - t0

    def exec(self, name: str, *command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return self("exec", name, *command, timeout=timeout, check=False)

    def stop(self, name: str, timeout_s: float) -> int:
        """Stop (the container's stop signal, then SIGKILL after ``timeout_s``); its exit code."""
        self("stop", "-t", str(int(timeout_s)), name, timeout=timeout_s + 60)
        code = self.state(name).get("ExitCode")
        assert isinstance(code, int)
        return code

    def cleanup(self, keep_images: bool) -> None:
        for c in reversed(self.containers):
            self("rm", "-f", "-t", "0", c, check=False, timeout=120)
        for v in self.volumes:
            self("volume", "rm", "-f", v, check=False)
        for n in self.networks:
            self("network", "rm", "-f", n, check=False)
        if not keep_images:
            for tag in reversed(self.images):
                self("rmi", "-f", tag, check=False, timeout=120)


def service_args(
    svc: Service,
    *,
    network: str,
    environment: dict[str, str],
    volumes: dict[str, str],
    binds_root: Path,
    secrets: dict[str, Path],
    health: list[str] | None,
) -> list[str]:
    """``podman run`` options for a compose service: network alias = service name, environment,
    named volumes (compose name -> podman volume), bind mounts, secrets at /run/secrets/NAME,
    entrypoint, restart policy, healthcheck, stop signal and grace period."""
    args = ["--network", network, "--network-alias", svc.name]
    for k, v in environment.items():
        args += ["-e", f"{k}={v}"]
    for m in svc.volumes:
        source = volumes[m.source] if m.named else str((binds_root / m.source).resolve())
        args += ["-v", f"{source}:{m.target}{':ro' if m.read_only else ''}"]
    for s in svc.secrets:
        args += ["-v", f"{secrets[s]}:/run/secrets/{s}:ro"]
    if svc.entrypoint is not None:
        args += ["--entrypoint", json.dumps(svc.entrypoint)]
    if svc.restart:
        args += ["--restart", svc.restart]
    if health:
        cmd = health[1] if health[0] == "CMD-SHELL" else json.dumps(health[1:])
        args += ["--health-cmd", cmd]
    if svc.stop_signal:
        args += ["--stop-signal", svc.stop_signal]
    if svc.stop_grace_s is not None:
        args += ["--stop-timeout", str(int(svc.stop_grace_s))]
    return args


def have_podman() -> str | None:
    """Why the container test cannot run here, or None."""
    if shutil.which("podman") is None:
        return "podman not found: apt-get install podman buildah runc debootstrap (.ci/run does)"
    if os.geteuid() != 0:
        return "needs rootful podman: run as root (CI does)"
    return None

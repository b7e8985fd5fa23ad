"""docker-compose.yml read as data, so the container test runs what the file says.

Only the parts the test uses: per service its image or build, entrypoint, command, environment
(YAML anchors and merge keys resolved), volumes, secrets, healthcheck, depends_on, restart and stop
settings; the top-level secrets (files) and volumes. Compose's ``$$`` escape becomes ``$``; any
``${VAR}`` interpolation is an error, because the file is meant to need none (secrets are files).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

_INTERPOLATION = re.compile(r"(?<!\$)\$(?!\$)")
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h)$")


@dataclass(frozen=True)
class Mount:
    source: str  # a named volume, or a path relative to the compose file
    target: str
    read_only: bool
    named: bool


@dataclass(frozen=True)
class Service:
    name: str
    image: str | None
    build: bool
    entrypoint: list[str] | None
    command: list[str]
    environment: dict[str, str]
    volumes: list[Mount]
    secrets: list[str]
    healthcheck: list[str] | None  # ["CMD-SHELL", "…"] or ["CMD", arg, …]
    depends_on: dict[str, str]  # service -> condition
    restart: str | None
    stop_signal: str | None
    stop_grace_s: float | None


@dataclass(frozen=True)
class ComposeFile:
    path: Path
    services: dict[str, Service]
    secrets: dict[str, Path]  # secret name -> file, as the compose file names it (relative paths resolved)
    volumes: list[str] = field(default_factory=list)

    def start_order(self, names: list[str]) -> list[str]:
        """``names`` ordered so every service comes after what it depends on (among ``names``)."""
        done: list[str] = []

        def visit(name: str, path: tuple[str, ...]) -> None:
            if name in done:
                return
            if name in path:
                raise ValueError(f"dependency cycle: {' -> '.join((*path, name))}")
            for dep in self.services[name].depends_on:
                if dep in names:
                    visit(dep, (*path, name))
            done.append(name)

        for name in names:
            visit(name, ())
        return done

    def one_shots(self) -> set[str]:
        """Services some other service waits on to *complete* (migrations, exports)."""
        return {
            dep
            for s in self.services.values()
            for dep, cond in s.depends_on.items()
            if cond == "service_completed_successfully"
        }


def _unescape(value: Any, where: str) -> str:
    text = str(value)
    if _INTERPOLATION.search(text):
        raise ValueError(f"{where}: {text!r} needs variable interpolation; the stack takes secrets from files")
    return text.replace("$$", "$")


def _strings(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        raise ValueError(f"{where}: use the list form, not a shell string")
    return [_unescape(v, where) for v in value]


def _environment(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, list):
        value = dict(item.split("=", 1) for item in value)
    return {str(k): _unescape(v, f"{where}.{k}") for k, v in value.items()}


def _mounts(value: Any, where: str) -> list[Mount]:
    mounts = []
    for item in value or []:
        parts = str(item).split(":")
        if len(parts) not in (2, 3):
            raise ValueError(f"{where}: unsupported volume {item!r}")
        source, target = parts[0], parts[1]
        mode = parts[2] if len(parts) == 3 else "rw"
        named = not source.startswith((".", "/"))
        mounts.append(Mount(source, target, mode == "ro", named))
    return mounts


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"unsupported duration {value!r}")
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def load(path: Path) -> ComposeFile:
    data = yaml.safe_load(path.read_text())
    services = {}
    for name, spec in data["services"].items():
        where = f"services.{name}"
        deps = spec.get("depends_on") or {}
        if isinstance(deps, list):
            deps = {d: {"condition": "service_started"} for d in deps}
        health = spec.get("healthcheck", {}).get("test")
        services[name] = Service(
            name=name,
            image=spec.get("image"),
            build="build" in spec,
            entrypoint=_strings(spec["entrypoint"], f"{where}.entrypoint") if "entrypoint" in spec else None,
            command=_strings(spec.get("command"), f"{where}.command"),
            environment=_environment(spec.get("environment"), f"{where}.environment"),
            volumes=_mounts(spec.get("volumes"), f"{where}.volumes"),
            secrets=[str(s) for s in spec.get("secrets") or []],
            healthcheck=_strings(health, f"{where}.healthcheck") if health else None,
            depends_on={d: str((c or {}).get("condition", "service_started")) for d, c in deps.items()},
            restart=spec.get("restart"),
            stop_signal=spec.get("stop_signal"),
            stop_grace_s=_seconds(spec.get("stop_grace_period")),
        )
    secrets = {name: (path.parent / spec["file"]).resolve() for name, spec in (data.get("secrets") or {}).items()}
    return ComposeFile(path, services, secrets, list(data.get("volumes") or {}))

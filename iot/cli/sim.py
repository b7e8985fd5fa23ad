"""``iot sim``: run a simulated device fleet against a broker."""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, cast

import typer

from core.config import EMBEDDED_REGISTRY_FILE
from iot.cli.acting import acting
from iot.cli.devices_changes import provision
from iot.cli.exits import CliError
from iot.cli.toolkit import ExitCode, emit_json, fail, parse_duration, settings
from registry import devices as dev
from simulators.fleet import FleetConfig, Format
from simulators.runner import SimError, run_fleet

app = typer.Typer(no_args_is_help=True)
app.command("provision")(provision)


def _start_ms(text: str) -> int:
    if text == "now":
        return int(time.time() * 1000)
    try:
        value = float(text)
        return int(value * 1000) if value < 1e11 else int(value)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        fail(f"invalid --start {text!r}: use now, epoch seconds/ms or an ISO 8601 time")
    if dt.tzinfo is None:
        fail(f"--start {text!r} needs a time zone, e.g. {text}Z")
    return int(dt.timestamp() * 1000)


def _passwords(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except OSError as e:
        fail(f"cannot read password file {path}: {e.strerror}")
    except ValueError:
        fail(f"password file {path} is not JSON")
    if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
        fail(f"password file {path} must be a JSON object {{device_id: secret}}")
    return data


def _show(p: Any) -> None:
    sys.stderr.write(
        f"\r{p.elapsed:7.1f}s  sent {p.sent:>9}  acked {p.acked:>9}  "
        f"{p.rate:9.0f} msg/s  devices {p.devices_online:>5}  "
    )
    sys.stderr.flush()


def _check_provisioned(config: FleetConfig, passwords: dict[str, str], path: Path) -> None:
    """Every simulated id has a password; if not, name the prefix the file was provisioned with."""
    ids = [config.device_id(i) for i in range(config.devices)]
    missing = [d for d in ids if d not in passwords]
    if not missing:
        return
    theirs = sorted({m.group(1) for d in passwords if (m := _PROVISIONED.fullmatch(d))})
    if theirs and config.id_prefix.removesuffix("-") not in theirs:
        fail(
            f"no password for device {missing[0]} in {path}: it holds --prefix {', '.join(theirs)} devices; "
            f"`iot sim run --prefix` must be the `iot sim provision --prefix` (e.g. --prefix {theirs[0]})"
        )
    fail(f"no password for device {missing[0]} in {path} (provision {len(ids)} devices, or give fewer --devices)")


_PROVISIONED = re.compile(r"(.+)-\d{4,}")  # an id `iot sim provision --prefix P` gives


def _check_types(config: FleetConfig, broker: str | None) -> None:
    """The registry's type for each simulated device is the profile the simulator gives it: a fleet
    provisioned with some profiles and run with others would store wrong ``device_type`` tags."""
    ids = {config.device_id(i): config.profiles[i % len(config.profiles)] for i in range(config.devices)}
    s = settings(broker_url=broker)
    if not s.registry_url and not (s.data_dir / EMBEDDED_REGISTRY_FILE).exists():
        return  # no registry here (a simulator host): do not make an empty embedded one to ask
    try:
        with acting(s) as (session, actor):
            registered = {d.id: d.type for d in dev.list_devices(session, actor) if d.id in ids}
    except CliError as e:  # a simulator run need not reach the registry: say what went unchecked
        typer.echo(f"warning: device types not checked against the registry: {e}", err=True)
        return
    wrong = [(d, registered[d], p) for d, p in ids.items() if d in registered and registered[d] != p]
    if wrong:
        d, registry_type, profile = wrong[0]
        order = list(dict.fromkeys(registered[d] for d in ids if d in registered))
        fail(
            f"device {d} has type {registry_type} in the registry but --profile gives it {profile}"
            + (f" (and {len(wrong) - 1} more)" if len(wrong) > 1 else "")
            + f": give the provisioned profiles, {' '.join(f'--profile {p}' for p in order)}"
        )


@app.command("run")
def run(
    broker: str = typer.Option(
        None, "--broker", help="mqtt://[user:pass@]host:port, mqtts://… (default IOT_BROKER_URL)"
    ),
    devices: int = typer.Option(1, "--devices", help="number of simulated devices"),
    rate: float = typer.Option(1.0, "--rate", help="messages per second per device; 0 = max"),
    duration: str = typer.Option(None, "--duration", help="how long, e.g. 30s, 5m"),
    count: int = typer.Option(None, "--count", help="messages per device (instead of duration)"),
    seed: int = typer.Option(0, "--seed"),
    profile: list[str] = typer.Option(
        None, "--profile", help="thermostat, vibration, energy, air_quality; repeat to mix (default: all)"
    ),
    fmt: str = typer.Option(
        "json",
        "--format",
        help="json (= contract), senml, tasmota, zigbee2mqtt, shelly_gen2, esphome, ttn_v3 or sparkplug_b "
        "(each device an edge node)",
    ),
    node_devices: int = typer.Option(2, "--node-devices", help="sparkplug_b: devices behind each edge node"),
    pack: int = typer.Option(1, "--pack", help="SenML: up to N records per pack (whole samples)"),
    malformed: float = typer.Option(0.0, "--malformed", help="fraction of malformed messages"),
    duplicates: float = typer.Option(0.0, "--duplicates", help="fraction re-sent identically"),
    offline: float = typer.Option(0.0, "--offline", help="fraction of devices that drop offline"),
    start: str = typer.Option("now", "--start", help="simulated clock start: now, epoch, ISO"),
    prefix: str = typer.Option(
        "sim", "--prefix", "--id-prefix", help="device ids are PREFIX-0000… (as `iot sim provision --prefix`)"
    ),
    manifest: Path = typer.Option(None, "--manifest", help="write exact acknowledged counts here"),
    password_file: Path = typer.Option(
        None, "--password-file", help="JSON {device_id: secret} from `iot sim provision`"
    ),
    quiet: bool = typer.Option(False, "--quiet", help="no progress line"),
    as_json: bool = typer.Option(False, "--json", help="print the manifest as JSON"),
) -> None:
    """Publish a deterministic simulated fleet (QoS 1) and report what the broker acknowledged."""
    if duration is None and count is None:
        fail("give --duration (e.g. 30s) or --count")
    passwords = _passwords(password_file) if password_file else None
    prefix = prefix.removesuffix("-")  # the ids `iot sim provision --prefix P` gives: P-0000…
    config = FleetConfig(
        devices=devices,
        rate=rate,
        count=count,
        seed=seed,
        duration=parse_duration(duration) if duration is not None else None,
        profiles=tuple(profile) if profile else FleetConfig.profiles,
        format=cast(Format, fmt),  # FleetConfig refuses any other value
        node_devices=node_devices,
        pack=pack,
        malformed=malformed,
        duplicates=duplicates,
        offline=offline,
        start_ms=_start_ms(start),
        id_prefix=f"{prefix}-",
    )
    try:
        config.validate()
    except ValueError as e:
        fail(str(e))
    if passwords is not None:
        assert password_file is not None
        _check_provisioned(config, passwords, password_file)
        _check_types(config, broker)
    url = settings(broker_url=broker).broker_url
    progress = _show if not quiet and sys.stderr.isatty() else None
    try:
        result = run_fleet(config, url, progress, passwords)
    except SimError as e:
        fail(str(e), e.code)
    finally:
        if progress:
            sys.stderr.write("\n")
    data = result.as_json()
    if manifest:
        manifest.write_text(json.dumps(data, indent=1) + "\n")
    if as_json:
        emit_json(data)
    elif not quiet:
        t = data["totals"]["messages"]
        typer.echo(
            f"{sum(t.values())} messages acknowledged from {devices} devices in "
            f"{data['elapsed_s']:.1f}s (+{len(data['malformed'])} malformed, "
            f"{data['duplicates']} duplicates, {data['unacked']} unacknowledged)",
            err=True,
        )
    if result.unacked:
        fail(f"{result.unacked} message(s) not acknowledged by the broker in time", ExitCode.FAILED)
    if result.lost:
        fail(f"lost the broker connection of {len(result.lost)} device(s), e.g. {result.lost[0]}", ExitCode.FAILED)

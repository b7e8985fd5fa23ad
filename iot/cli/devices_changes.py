"""The ``iot devices`` commands that change devices, through the ORM of :mod:`registry.devices`
(add, update, disable, enable, retire; and ``iot sim provision``), each a one-command app that
:mod:`iot.cli.registry` loads by name when it is invoked, so that ``devices list|show`` load no ORM.
"""

import json
from pathlib import Path
from typing import Annotated

import typer

from iot.cli.acting import acting
from iot.cli.registry import STATUS_HELP, RegistryOpt
from iot.cli.toolkit import fail, settings, shown
from registry import devices as dev
from simulators.profiles import PROFILES


def _labels(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        k, sep, v = pair.partition("=")
        if not sep or not k:
            fail(f"invalid label {pair!r}: use key=value")
        out[k] = v
    return out


add_app = typer.Typer()


@add_app.command("add")
def add(
    device_id: Annotated[str, typer.Argument(metavar="ID")],
    type: Annotated[str, typer.Option("--type", help="Device type / profile.")] = "generic",
    site: Annotated[str | None, typer.Option("--site")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", help="k=v, repeatable")] = None,
    with_secret: Annotated[bool, typer.Option("--with-secret", help="Issue a broker secret (printed once).")] = False,
    gateway: Annotated[
        str | None, typer.Option("--gateway", help="The gateway it publishes through (accepted only from there).")
    ] = None,
    registry: RegistryOpt = None,
) -> None:
    """Register a device (admins)."""
    labels = _labels(label or [])
    with acting(settings(registry_url=registry)) as (session, actor):
        secret = dev.add_device(session, actor, device_id, type, site, labels, with_secret, gateway)
    typer.echo(f"added device {device_id} (provisioned)")
    if secret:
        typer.echo(f"secret (shown once, store it now): {secret}")


update_app = typer.Typer()


@update_app.command("update")
def update(
    device_id: Annotated[str, typer.Argument(metavar="ID")],
    type: Annotated[str | None, typer.Option("--type", help="New device type / profile.")] = None,
    site: Annotated[str | None, typer.Option("--site", help="Move to this site.")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", help="Set k=v, repeatable.")] = None,
    remove_label: Annotated[list[str] | None, typer.Option("--remove-label", help="Drop label k, repeatable.")] = None,
    registry: RegistryOpt = None,
) -> None:
    """Change a device's type, site or labels (admins; audited)."""
    labels = _labels(label or [])
    with acting(settings(registry_url=registry)) as (session, actor):
        d = dev.update_device(session, actor, device_id, type, site, labels, remove_label or [])
        summary = f"type {d.type}, site {d.site or '(none)'}, labels " + (
            " ".join(f"{k}={v}" for k, v in sorted((d.labels or {}).items())) or "(none)"
        )
    typer.echo(f"updated device {device_id}: {shown(summary)}")


def _status_command(action: str) -> None:
    def command(
        device_id: Annotated[str, typer.Argument(metavar="ID")],
        registry: RegistryOpt = None,
    ) -> None:
        with acting(settings(registry_url=registry)) as (session, actor):
            d = dev.set_status(session, actor, device_id, action)
            status = d.status
        typer.echo(f"device {device_id}: {status}")

    command.__doc__ = STATUS_HELP[action]
    STATUS_APPS[action].command(action)(command)


STATUS_APPS = {action: typer.Typer() for action in STATUS_HELP}
for _action in STATUS_HELP:
    _status_command(_action)
disable_app, enable_app, retire_app = (STATUS_APPS[a] for a in ("disable", "enable", "retire"))


# --- iot sim provision -------------------------------------------------------------------------


def _known_profiles() -> list[str]:
    return list(PROFILES)


def provision(
    devices: Annotated[int, typer.Option("--devices", "-n", help="How many devices.")],
    profile: Annotated[list[str] | None, typer.Option("--profile", help="Profile(s), assigned round-robin.")] = None,
    site: Annotated[str | None, typer.Option("--site")] = None,
    prefix: Annotated[str, typer.Option("--prefix", help="Device id prefix.")] = "sim",
    password_file: Annotated[
        Path | None,
        typer.Option("--password-file", help="JSON {device_id: secret} for `iot sim run`."),
    ] = None,
    show_secrets: Annotated[bool, typer.Option("--show-secrets")] = False,
    registry: RegistryOpt = None,
) -> None:
    """Register a simulated fleet with credentials in one step (admins)."""
    known = _known_profiles()
    profiles = profile or known or ["generic"]
    unknown = [p for p in profiles if known and p not in known]
    if unknown:
        fail(f"unknown profile {unknown[0]!r}: use one of {', '.join(known)}")
    s = settings(registry_url=registry)
    target = password_file or s.data_dir / "sim-passwords.json"
    existing: dict[str, str] = {}
    if target.exists():
        try:
            existing = dict(json.loads(target.read_text()))
        except (ValueError, TypeError):
            fail(f"{target} exists but is not a JSON object of secrets: choose another file")
    with acting(s) as (session, actor):
        secrets = dev.provision_fleet(session, actor, devices, profiles, site, prefix)
        dev.write_private(target, json.dumps(existing | secrets, indent=2) + "\n")
    typer.echo(f"provisioned {len(secrets)} devices; secrets in {target}")
    if show_secrets:
        for device_id, secret in secrets.items():
            typer.echo(f"{device_id} {secret}")

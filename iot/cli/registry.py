"""``iot devices``, ``iot registry`` and ``iot sim provision``: parse, open the registry, call one
function. The CLI acts as the API key in ``IOT_API_KEY`` (while no key exists: ``local-admin``).
Reads go through Core (:func:`iot.cli.acting.reading`); the commands that change devices (the ORM
of :mod:`registry.devices`) are in :mod:`iot.cli.devices_changes`, loaded by name when invoked.

Exit codes: :class:`iot.cli.toolkit.ExitCode`.
"""

import json
import sys
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from sqlalchemy import Connection

from core.config import Settings
from ingest.stores import documents_from, timeseries_from
from iot.cli import output
from iot.cli.acting import acting, reading
from iot.cli.lazy import Lazy, lazy_group
from iot.cli.toolkit import ExitCode, emit_json, fail, iso, parse_duration, print_table, settings, shown
from iot.present.sparks import device_sparklines
from registry import audit as audit_mod
from registry import device_queries
from registry.alerts.queries import AlertSummary, list_alerts
from registry.alerts.rules import AlertStatus
from registry.auth import ROLES, Actor, create_key, disable_key, list_keys
from registry.db import current_revision, head_revision, make_engine, migrate
from registry.device_queries import DEVICE_STATUSES

OPEN_ALERTS_SHOWN = 50  # `devices show` lists at most this many unresolved alerts
# the keys of each list's rows, so that a CSV of none still has its header
DEVICE_COLUMNS = ("id", "type", "site", "labels", "status", "online", "created_at", "last_seen_at",
                  "firmware_version", "has_secret", "gateway")  # fmt: skip
KEY_COLUMNS = ("name", "role", "sites", "prefix", "created_at", "disabled")

STATUS_HELP = {
    "disable": "Disable a device: the broker refuses it after the next export (admins).",
    "enable": "Re-enable a disabled device (admins).",
    "retire": "Retire a device for good; its secret is dropped (admins).",
}
CHANGES = "devices_changes"
devices_app = typer.Typer(
    cls=lazy_group(
        {
            "add": Lazy(CHANGES, "add_app", "Register a device (admins).", group=False),
            "update": Lazy(
                CHANGES, "update_app", "Change a device's type, site or labels (admins; audited).", group=False
            ),
            **{a: Lazy(CHANGES, f"{a}_app", h, group=False) for a, h in STATUS_HELP.items()},
        }
    ),
    no_args_is_help=True,
)
registry_app = typer.Typer(
    cls=lazy_group(  # the topic mappings it reads load the Sparkplug codec: not for `iot registry keys list`
        {
            "export-mosquitto": Lazy(
                "mosquitto",
                "app",
                "Write a mosquitto password file, ACL and listener options from the registry (unrestricted admins).",
                group=False,
            )
        }
    ),
    no_args_is_help=True,
)
keys_app = typer.Typer(no_args_is_help=True, help="Operator API keys (admins only).")
registry_app.add_typer(keys_app, name="keys")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
RegistryOpt = Annotated[str | None, typer.Option("--registry", help="Registry URL (env IOT_REGISTRY_URL).")]


# --- iot devices -------------------------------------------------------------------------------


@devices_app.command("list")
def list_(
    status: Annotated[str | None, typer.Option("--status", help="/".join(DEVICE_STATUSES))] = None,
    type: Annotated[str | None, typer.Option("--type")] = None,
    site: Annotated[str | None, typer.Option("--site")] = None,
    as_json: JsonOpt = False,
    fmt: output.FormatOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """List devices (viewers)."""
    if status and status not in DEVICE_STATUSES:
        fail(f"invalid --status {status!r}: use one of {', '.join(DEVICE_STATUSES)}")
    with reading(settings(registry_url=registry)) as (db, actor):
        rows = [device_queries.as_dict(d) for d in device_queries.list_devices(db, actor, status, type, site)]
    if output.machine(fmt, as_json, rows, DEVICE_COLUMNS):
        return
    cols = ("id", "type", "site", "gateway", "status", "online", "last_seen_at", "firmware_version")
    print_table(cols, ([r[c] for c in cols] for r in rows), title=f"{len(rows)} devices")


def _merge_stores(s: Settings, device_id: str) -> tuple[dict[str, Any], list[str]]:
    """Latest config document and readings for ``device_id``; warnings for unreachable stores."""
    merged: dict[str, Any] = {}
    warnings: list[str] = []
    try:
        docs = documents_from(s)
        docs.connect()
        try:
            merged["config"] = docs.latest("device_configs", device_id)
        finally:
            docs.close()
    except Exception as e:  # show degrades to what is reachable
        warnings.append(f"documents store unavailable ({type(e).__name__}: {_first_line(e)})")
    try:
        ts = timeseries_from(s)
        ts.connect()
        try:
            for key, measurement in (("telemetry", "sensor_readings"), ("metrics", "device_metrics")):
                latest = ts.latest(measurement, device_id)
                merged[key] = {f: {"value": v, "at": iso(t / 1e9)} for f, (t, v) in latest.items()}
        finally:
            ts.close()
    except Exception as e:
        warnings.append(f"time-series store unavailable ({type(e).__name__}: {_first_line(e)})")
    return merged, warnings


_EPOCH = datetime.fromtimestamp(0, UTC)


def _open_alerts(db: Connection, actor: Actor, device_id: str) -> list[AlertSummary]:
    """The device's alerts not yet resolved (open or acknowledged), newest first."""
    found = [
        a
        for status in (AlertStatus.OPEN, AlertStatus.ACKNOWLEDGED)
        for a in list_alerts(db, actor, status=status.value, device=device_id, limit=OPEN_ALERTS_SHOWN)
    ]
    return sorted(found, key=lambda a: (a.opened_at or _EPOCH, a.id), reverse=True)[:OPEN_ALERTS_SHOWN]


def _first_line(e: BaseException) -> str:
    text = str(e)
    return text.splitlines()[0] if text else ""


@devices_app.command("show")
def show(
    device_id: Annotated[str, typer.Argument(metavar="ID")],
    as_json: JsonOpt = False,
    registry: RegistryOpt = None,
) -> None:
    """One device: registry row, latest config document and latest readings (viewers)."""
    s = settings(registry_url=registry)
    with reading(s) as (db, actor):
        row = device_queries.as_dict(device_queries.read_device(db, actor, device_id))
        alerts = _open_alerts(db, actor, device_id)
    merged, warnings = _merge_stores(s, device_id)
    for w in warnings:
        typer.echo(f"warning: {w}", err=True)
    data = {**row, **merged, "open_alerts": [asdict(a) for a in alerts]}
    if as_json:
        emit_json(data)
        return
    for k, v in row.items():
        if isinstance(v, datetime):
            v = iso(v)
        elif isinstance(v, dict):
            v = " ".join(f"{lk}={lv}" for lk, lv in v.items())
        typer.echo(f"{k:<17} {shown(v)}")
    if "config" in merged:
        cfg = merged["config"]
        typer.echo("config            " + ("(none)" if cfg is None else ""))
        if cfg is not None:
            typer.echo(json.dumps(cfg, indent=2, default=str))
    typer.echo(f"open alerts       {'(none)' if not alerts else len(alerts)}")
    for a in alerts:
        typer.echo(
            f"  #{a.id:<5} {shown(a.status):<12} {shown(a.severity):<8} {shown(a.rule)}  "
            f"since {iso(a.opened_at)}  {shown(a.message)}"
        )
    sparks = device_sparklines(s, device_id)
    for key in ("telemetry", "metrics"):
        if key in merged:
            typer.echo(f"latest {key:<10} " + ("(none)" if not merged[key] else ""))
            for f, fv in sorted(merged[key].items()):
                trend = sparks.get(key, {}).get(f, "")
                line = f"  {shown(f):<16} {shown(fv['value'])}  @ {fv['at']}"
                typer.echo(line + (f"  {trend} (last hour)" if trend else ""))


# --- iot registry ------------------------------------------------------------------------------


@registry_app.command("migrate")
def migrate_cmd(registry: RegistryOpt = None) -> None:
    """Create or upgrade the registry schema to the code's revision (run before the daemon)."""
    url = settings(registry_url=registry).resolved_registry_url()
    typer.echo(f"registry at revision {migrate(url)} (head)")


@registry_app.command("status")
def status_cmd(as_json: JsonOpt = False, registry: RegistryOpt = None) -> None:
    """Current vs head schema revision; exit 1 when the schema needs `iot registry migrate`."""
    engine = make_engine(settings(registry_url=registry).resolved_registry_url())
    try:
        current, head = current_revision(engine), head_revision()
    finally:
        engine.dispose()
    if as_json:
        emit_json({"current": current, "head": head, "migrated": current == head})
    elif current == head:
        typer.echo(f"current {current}, head {head}: up to date")
    if current != head:
        fail(f"registry schema at {current or '(empty)'}, head {head}: run `iot registry migrate`", ExitCode.FAILED)


@registry_app.command("audit")
def audit_cmd(
    since: Annotated[str | None, typer.Option("--since", help="e.g. 1h, 7d")] = None,
    actor_name: Annotated[str | None, typer.Option("--actor")] = None,
    action: Annotated[str | None, typer.Option("--action", help="prefix, e.g. device.")] = None,
    target: Annotated[str | None, typer.Option("--target", help="e.g. device:sim-0001")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 200,
    as_json: JsonOpt = False,
    fmt: output.FormatOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Who changed what, newest first (operators and admins)."""
    start = datetime.now(UTC) - timedelta(seconds=parse_duration(since)) if since else None
    with reading(settings(registry_url=registry)) as (db, actor):
        rows = [
            audit_mod.as_dict(e) for e in audit_mod.query_audit(db, actor, start, actor_name, action, target, limit)
        ]
    if output.machine(fmt, as_json, rows, audit_mod.COLUMNS):
        return
    print_table(
        ("at", "actor", "action", "target", "detail"),
        ([r["at"], r["actor"], r["action"], r["target"], json.dumps(r["detail"], default=str)] for r in rows),
    )


@keys_app.command("add")
def keys_add(
    name: Annotated[str, typer.Option("--name")],
    role: Annotated[str, typer.Option("--role", help="/".join(ROLES))],
    site: Annotated[list[str] | None, typer.Option("--site", help="Limit to site(s).")] = None,
    registry: RegistryOpt = None,
) -> None:
    """Create an API key; it is printed once (admins; anyone while no key exists)."""
    if role not in ROLES:
        fail(f"invalid --role {role!r}: use one of {', '.join(ROLES)}")
    with acting(settings(registry_url=registry)) as (session, actor):
        key = create_key(session, actor, name, role, site or [])
    typer.echo(f"created {role} key {name!r}; it is shown once, store it now:", err=True)
    sys.stdout.write(key + "\n")


@keys_app.command("list")
def keys_list(as_json: JsonOpt = False, fmt: output.FormatOpt = None, registry: RegistryOpt = None) -> None:
    """API keys (never the keys themselves)."""
    with reading(settings(registry_url=registry)) as (db, actor):
        rows: list[dict[str, Any]] = [
            {
                "name": k.name,
                "role": k.role,
                "sites": k.sites,
                "prefix": k.key_prefix,
                "created_at": k.created_at,
                "disabled": k.disabled,
            }
            for k in list_keys(db, actor)
        ]
    if output.machine(fmt, as_json, rows, KEY_COLUMNS):
        return
    print_table(
        ("name", "role", "sites", "prefix", "created_at", "disabled"),
        (
            [r["name"], r["role"], ",".join(r["sites"] or []) or "all", r["prefix"], r["created_at"], r["disabled"]]
            for r in rows
        ),
    )


@keys_app.command("disable")
def keys_disable(name: Annotated[str, typer.Argument()], registry: RegistryOpt = None) -> None:
    """Disable an API key by name."""
    with acting(settings(registry_url=registry)) as (session, actor):
        disable_key(session, actor, name)
    typer.echo(f"disabled key {name!r}")

"""``iot alerts``: list, show, ack, resolve, stats and ``rules``. Parse, open the registry as
the actor behind ``IOT_API_KEY``, call one function in :mod:`registry.alerts.queries` (the lists,
through Core) or, in :mod:`iot.cli.alerts_changes` (loaded by name when invoked), in
:mod:`registry.alerts.store` (the ORM).

Exit codes: :class:`iot.cli.toolkit.ExitCode` (4: not allowed in the alert's current state).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from iot.cli import output
from iot.cli.acting import reading
from iot.cli.lazy import Lazy, lazy_group
from iot.cli.toolkit import ExitCode, fail, parse_duration, print_table, settings
from registry.alerts import queries
from registry.alerts.kinds import describe
from registry.alerts.rules import SEVERITIES, STATUSES

# the keys of registry.alerts.store.list_alerts' rows: a CSV of no alerts still has its header
ALERT_COLUMNS = (
    "id", "status", "severity", "device_id", "site", "rule_id", "rule", "count", "last_value", "message",
    "opened_at", "last_seen_at", "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by",
)  # fmt: skip

CHANGES = "alerts_changes"
app = typer.Typer(
    cls=lazy_group(
        {
            "show": Lazy(CHANGES, "show_app", "One alert and its timeline.", group=False),
            "ack": Lazy(CHANGES, "ack_app", "Acknowledge an open alert (operators).", group=False),
            "resolve": Lazy(CHANGES, "resolve_app", "Resolve an open or acknowledged alert (operators).", group=False),
            "stats": Lazy(
                CHANGES,
                "stats_app",
                "Counts by status, severity, rule and device; mean time to acknowledge and to resolve.",
                group=False,
            ),
            "channels": Lazy("notify", "app", "Where alert notifications go: webhooks, Slack, e-mail."),
            "notifier": Lazy("notify_send", "notifier_app", "The notifier that sends queued notifications."),
        }
    ),
    no_args_is_help=True,
)
rules_app = typer.Typer(
    cls=lazy_group(
        {
            "add": Lazy(CHANGES, "rules_add_app", "Add a rule (admins).", group=False),
            "remove": Lazy(CHANGES, "rules_remove_app", "Delete a rule (admins).", group=False),
            "enable": Lazy(CHANGES, "rules_enable_app", "Enable a rule (admins).", group=False),
            "disable": Lazy(
                CHANGES, "rules_disable_app", "Disable a rule (admins); its open alerts are resolved.", group=False
            ),
        }
    ),
    no_args_is_help=True,
    help="Alert rules (admins manage, anyone lists).",
)
app.add_typer(rules_app, name="rules")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
RegistryOpt = Annotated[str | None, typer.Option("--registry", help="Registry URL (env IOT_REGISTRY_URL).")]
NoteOpt = Annotated[str | None, typer.Option("--note", help="Kept in the alert's timeline.")]


def _choice(value: str | None, allowed: tuple[str, ...], what: str) -> str | None:
    if value is not None and value not in allowed:
        fail(f"unknown {what} {value!r} (use {', '.join(allowed)})", ExitCode.USAGE)
    return value


def since_arg(text: str | None) -> datetime | None:
    return None if text is None else datetime.now(UTC) - timedelta(seconds=parse_duration(text))


def num(v: float | None) -> str:
    return "" if v is None else f"{v:g}"


# --- alerts ------------------------------------------------------------------------------------


@app.command("list")
def list_(
    status: Annotated[str | None, typer.Option("--status", help="open|acknowledged|resolved")] = None,
    severity: Annotated[str | None, typer.Option("--severity", help=", ".join(SEVERITIES))] = None,
    device: Annotated[str | None, typer.Option("--device")] = None,
    site: Annotated[str | None, typer.Option("--site")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Opened within, e.g. 24h.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    json_: JsonOpt = False,
    fmt: output.FormatOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Alerts, newest first."""
    _choice(status, STATUSES, "status")
    _choice(severity, SEVERITIES, "severity")
    with reading(settings(registry_url=registry)) as (db, actor):
        rows = queries.list_alerts(
            db, actor, status=status, severity=severity, device=device, site=site, since=since_arg(since), limit=limit
        )
    if output.machine(fmt, json_, [asdict(r) for r in rows], ALERT_COLUMNS):
        return
    if not rows:
        typer.echo("no alerts match")
        return
    print_table(
        ["ID", "STATUS", "SEVERITY", "DEVICE", "SITE", "RULE", "COUNT", "LAST VALUE", "OPENED", "LAST SEEN", "MESSAGE"],
        (
            [
                r.id,
                r.status,
                r.severity,
                r.device_id,
                r.site,
                r.rule,
                r.count,
                num(r.last_value),
                r.opened_at,
                r.last_seen_at,
                r.message,
            ]
            for r in rows
        ),
    )


# --- rules -------------------------------------------------------------------------------------


RULE_COLUMNS = (
    "id", "name", "kind", "enabled", "severity", "scope", "scope_value", "definition", "measurement", "field", "op",
    "value", "for_s", "hysteresis", "clear_after_s", "level", "absolute", "created_at",
)  # fmt: skip


def rule_dict(r: Any) -> dict[str, Any]:
    return {
        "id": r.id,
        "name": r.name,
        "kind": r.kind,
        "enabled": r.enabled,
        "severity": r.severity,
        "scope": r.scope,
        "scope_value": r.scope_value,
        "definition": describe(queries.rule_from_row(r)),
        "measurement": r.measurement,
        "field": r.field,
        "op": r.op,
        "value": r.threshold,
        "for_s": r.hold_s,
        "hysteresis": r.hysteresis,
        "clear_after_s": r.clear_after_s,
        "level": r.level,
        "absolute": r.absolute,
        "created_at": r.created_at,
    }


@rules_app.command("list")
def rules_list(json_: JsonOpt = False, fmt: output.FormatOpt = None, registry: RegistryOpt = None) -> None:
    """Every rule, enabled or not."""
    with reading(settings(registry_url=registry)) as (db, actor):
        rows = [rule_dict(r) for r in queries.list_rules(db, actor)]
    if output.machine(fmt, json_, rows, RULE_COLUMNS):
        return
    print_table(
        ["ID", "NAME", "KIND", "ENABLED", "SEVERITY", "SCOPE", "DEFINITION"],
        (
            [
                r["id"],
                r["name"],
                r["kind"],
                "yes" if r["enabled"] else "no",
                r["severity"],
                r["scope"] + (f":{r['scope_value']}" if r["scope_value"] else ""),
                r["definition"],
            ]
            for r in rows
        ),
    )

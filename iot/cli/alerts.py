"""``iot alerts``: list, show, ack, resolve, stats and ``rules``. Parse, open the registry as
the actor behind ``IOT_API_KEY``, call one function in :mod:`registry.alerts.store` (the ORM:
imported by the commands that use it) or, for the lists, :mod:`registry.alerts.queries` (Core).

Exit codes: :class:`iot.cli.toolkit.ExitCode` (4: not allowed in the alert's current state).
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from iot.cli import output
from iot.cli.acting import acting, reading
from iot.cli.lazy import Lazy, lazy_group
from iot.cli.toolkit import ExitCode, emit_json, fail, iso, parse_duration, print_table, settings, shown
from registry.alerts import queries
from registry.alerts.kinds import describe
from registry.alerts.rules import LEVELS, OPS, SCOPES, SEVERITIES, STATUSES, Rule, RuleKind

# the keys of registry.alerts.store.list_alerts' rows: a CSV of no alerts still has its header
ALERT_COLUMNS = (
    "id", "status", "severity", "device_id", "site", "rule_id", "rule", "count", "last_value", "message",
    "opened_at", "last_seen_at", "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by",
)  # fmt: skip

app = typer.Typer(
    cls=lazy_group(
        {
            "channels": Lazy("notify", "app", "Where alert notifications go: webhooks, Slack, e-mail."),
            "notifier": Lazy("notify", "notifier_app", "The notifier that sends queued notifications."),
        }
    ),
    no_args_is_help=True,
)
rules_app = typer.Typer(no_args_is_help=True, help="Alert rules (admins manage, anyone lists).")
app.add_typer(rules_app, name="rules")

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
RegistryOpt = Annotated[str | None, typer.Option("--registry", help="Registry URL (env IOT_REGISTRY_URL).")]
NoteOpt = Annotated[str | None, typer.Option("--note", help="Kept in the alert's timeline.")]


def _choice(value: str | None, allowed: tuple[str, ...], what: str) -> str | None:
    if value is not None and value not in allowed:
        fail(f"unknown {what} {value!r} (use {', '.join(allowed)})", ExitCode.USAGE)
    return value


def _since(text: str | None) -> datetime | None:
    return None if text is None else datetime.now(UTC) - timedelta(seconds=parse_duration(text))


def _num(v: float | None) -> str:
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
            db, actor, status=status, severity=severity, device=device, site=site, since=_since(since), limit=limit
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
                _num(r.last_value),
                r.opened_at,
                r.last_seen_at,
                r.message,
            ]
            for r in rows
        ),
    )


@app.command("show")
def show(
    alert_id: Annotated[int, typer.Argument(metavar="ID")],
    json_: JsonOpt = False,
    registry: RegistryOpt = None,
) -> None:
    """One alert and its timeline."""
    from registry.alerts import store

    with acting(settings(registry_url=registry)) as (s, actor):
        a = store.show_alert(s, actor, alert_id)
    if json_:
        emit_json(asdict(a))
        return
    for key in (
        "id",
        "status",
        "severity",
        "rule",
        "device_id",
        "site",
        "message",
        "count",
        "last_value",
        "opened_at",
        "last_seen_at",
        "acknowledged_at",
        "acknowledged_by",
        "resolved_at",
        "resolved_by",
    ):
        v = getattr(a, key)
        if v is not None:
            typer.echo(f"{key:>16}: {shown(v)}")
    print_table(
        ["AT", "ACTION", "ACTOR", "VALUE", "NOTE"],
        ([e.at, e.action, e.actor, _num(e.value), e.note] for e in a.timeline),
        title="timeline",
    )
    if a.notifications:
        from iot.cli.notify_view import print_notifications

        print_notifications(a.notifications)


@app.command("ack")
def ack(
    alert_id: Annotated[int, typer.Argument(metavar="ID")],
    note: NoteOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Acknowledge an open alert (operators)."""
    from registry.alerts import store

    with acting(settings(registry_url=registry)) as (s, actor):
        store.acknowledge(s, actor, alert_id, note)
        typer.echo(f"alert {alert_id} acknowledged by {actor.name}")


@app.command("resolve")
def resolve(
    alert_id: Annotated[int, typer.Argument(metavar="ID")],
    note: NoteOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Resolve an open or acknowledged alert (operators)."""
    from registry.alerts import store

    with acting(settings(registry_url=registry)) as (s, actor):
        store.resolve(s, actor, alert_id, note)
        typer.echo(f"alert {alert_id} resolved by {actor.name}")


def _secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}s"


@app.command("stats")
def stats(
    since: Annotated[str, typer.Option("--since", help="Alerts opened within, e.g. 7d.")] = "7d",
    json_: JsonOpt = False,
    registry: RegistryOpt = None,
) -> None:
    """Counts by status, severity, rule and device; mean time to acknowledge and to resolve."""
    from registry.alerts import store

    with acting(settings(registry_url=registry)) as (s, actor):
        st = store.stats(s, actor, since=_since(since))
    if json_:
        emit_json(asdict(st))
        return
    typer.echo(f"alerts opened since {iso(st.since)}: {st.total}")
    typer.echo(
        f"mean time to acknowledge: {_secs(st.mean_time_to_ack_s)}, to resolve: {_secs(st.mean_time_to_resolve_s)}"
    )
    for title, key in (
        ("STATUS", "by_status"),
        ("SEVERITY", "by_severity"),
        ("RULE", "by_rule"),
        ("DEVICE (top 20)", "by_device"),
    ):
        counts: dict[str, int] = getattr(st, key)
        if counts:
            print_table([title, "COUNT"], counts.items())


# --- rules -------------------------------------------------------------------------------------


RULE_COLUMNS = (
    "id", "name", "kind", "enabled", "severity", "scope", "scope_value", "definition", "measurement", "field", "op",
    "value", "for_s", "hysteresis", "clear_after_s", "level", "absolute", "created_at",
)  # fmt: skip


def _rule_dict(r: Any) -> dict[str, Any]:
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
        rows = [_rule_dict(r) for r in queries.list_rules(db, actor)]
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


@rules_app.command("add")
def rules_add(
    name: Annotated[str, typer.Argument(metavar="NAME")],
    kind: Annotated[RuleKind, typer.Option("--kind")],
    severity: Annotated[str, typer.Option("--severity", help=", ".join(SEVERITIES))],
    field: Annotated[str | None, typer.Option("--field", help="threshold/rate: the field.")] = None,
    op: Annotated[str | None, typer.Option("--op", help=" ".join(OPS))] = None,
    value: Annotated[float | None, typer.Option("--value", help="threshold: the limit; rate: per second.")] = None,
    for_: Annotated[
        str | None, typer.Option("--for", help="threshold/rate: how long it must hold; nodata: the silence, e.g. 300s.")
    ] = None,
    hysteresis: Annotated[
        float, typer.Option("--hysteresis", min=0, help="threshold: clear only this far back past the value.")
    ] = 0.0,
    clear_after: Annotated[
        str | None, typer.Option("--clear-after", help="rate/event: resolve after this long without a breach (60s).")
    ] = None,
    measurement: Annotated[
        str | None, typer.Option("--measurement", help="Only this measurement (default: any with the field).")
    ] = None,
    level: Annotated[str | None, typer.Option("--level", help="event: " + ", ".join(LEVELS))] = None,
    signed: Annotated[bool, typer.Option("--signed", help="rate: compare the signed rate, not its magnitude.")] = False,
    scope: Annotated[str, typer.Option("--scope", help=", ".join(SCOPES))] = "all",
    scope_value: Annotated[
        str | None, typer.Option("--scope-value", help="The device id, type or site the scope names.")
    ] = None,
    json_: JsonOpt = False,
    registry: RegistryOpt = None,
) -> None:
    """Add a rule (admins). Examples: --kind threshold --field temperature --op '>' --value 80
    --for 60s --hysteresis 2; --kind rate --field pressure --op '>' --value 5; --kind nodata
    --for 300s; --kind event --level error."""
    if kind is not RuleKind.EVENT and level is not None:
        fail("--level is for event rules", ExitCode.USAGE)
    rule = Rule(
        id=0,
        name=name,
        kind=kind,
        severity=severity,
        scope=scope,
        scope_value=scope_value,
        measurement=measurement,
        field=field,
        op=op,
        threshold=value,
        hold_s=parse_duration(for_) if for_ else 0.0,
        hysteresis=hysteresis,
        clear_after_s=parse_duration(clear_after) if clear_after else 0.0,
        level=(level or "error") if kind is RuleKind.EVENT else None,
        absolute=not signed,
    )
    from registry.alerts import store

    with acting(settings(registry_url=registry)) as (s, actor):
        out = _rule_dict(store.add_rule(s, actor, rule))
    if json_:
        emit_json(out)
    else:
        typer.echo(f"rule {out['id']} {name!r} added: {out['definition']} ({severity})")


@rules_app.command("remove")
def rules_remove(
    name: Annotated[str, typer.Argument(metavar="NAME|ID")],
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the rule's alerts and their history.")] = False,
    registry: RegistryOpt = None,
) -> None:
    """Delete a rule (admins). A rule with alerts needs --purge; `disable` keeps history."""
    from registry.alerts import store

    with acting(settings(registry_url=registry)) as (s, actor):
        n = store.remove_rule(s, actor, name, purge=purge)
    typer.echo(f"rule {name!r} removed" + (f" with {n} alert(s)" if n else ""))


@rules_app.command("enable")
def rules_enable(name: Annotated[str, typer.Argument(metavar="NAME|ID")], registry: RegistryOpt = None) -> None:
    """Enable a rule (admins)."""
    from registry.alerts import store

    with acting(settings(registry_url=registry)) as (s, actor):
        store.set_rule_enabled(s, actor, name, True)
    typer.echo(f"rule {name!r} enabled")


@rules_app.command("disable")
def rules_disable(name: Annotated[str, typer.Argument(metavar="NAME|ID")], registry: RegistryOpt = None) -> None:
    """Disable a rule (admins); its open alerts are resolved."""
    from registry.alerts import store

    with acting(settings(registry_url=registry)) as (s, actor):
        store.set_rule_enabled(s, actor, name, False)
    typer.echo(f"rule {name!r} disabled")

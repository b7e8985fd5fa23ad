"""The ``iot alerts`` commands that use the ORM store (:mod:`registry.alerts.store`): show, ack,
resolve, stats and ``rules add|remove|enable|disable``, each a one-command app that
:mod:`iot.cli.alerts` loads by name when it is invoked, so that ``alerts list`` and ``rules list``
(Core) load no ORM."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from iot.cli.acting import acting
from iot.cli.alerts import JsonOpt, NoteOpt, RegistryOpt, num, rule_dict, since_arg
from iot.cli.notify_view import print_notifications
from iot.cli.toolkit import ExitCode, emit_json, fail, iso, parse_duration, print_table, settings, shown
from registry.alerts import store
from registry.alerts.rules import LEVELS, OPS, SCOPES, SEVERITIES, Rule, RuleKind

show_app = typer.Typer()


@show_app.command("show")
def show(
    alert_id: Annotated[int, typer.Argument(metavar="ID")],
    json_: JsonOpt = False,
    registry: RegistryOpt = None,
) -> None:
    """One alert and its timeline."""
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
        ([e.at, e.action, e.actor, num(e.value), e.note] for e in a.timeline),
        title="timeline",
    )
    if a.notifications:
        print_notifications(a.notifications)


ack_app = typer.Typer()


@ack_app.command("ack")
def ack(
    alert_id: Annotated[int, typer.Argument(metavar="ID")],
    note: NoteOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Acknowledge an open alert (operators)."""
    with acting(settings(registry_url=registry)) as (s, actor):
        store.acknowledge(s, actor, alert_id, note)
        typer.echo(f"alert {alert_id} acknowledged by {actor.name}")


resolve_app = typer.Typer()


@resolve_app.command("resolve")
def resolve(
    alert_id: Annotated[int, typer.Argument(metavar="ID")],
    note: NoteOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Resolve an open or acknowledged alert (operators)."""
    with acting(settings(registry_url=registry)) as (s, actor):
        store.resolve(s, actor, alert_id, note)
        typer.echo(f"alert {alert_id} resolved by {actor.name}")


def _secs(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}s"


stats_app = typer.Typer()


@stats_app.command("stats")
def stats(
    since: Annotated[str, typer.Option("--since", help="Alerts opened within, e.g. 7d.")] = "7d",
    json_: JsonOpt = False,
    registry: RegistryOpt = None,
) -> None:
    """Counts by status, severity, rule and device; mean time to acknowledge and to resolve."""
    with acting(settings(registry_url=registry)) as (s, actor):
        st = store.stats(s, actor, since=since_arg(since))
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


rules_add_app = typer.Typer()


@rules_add_app.command("add")
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
    with acting(settings(registry_url=registry)) as (s, actor):
        out = rule_dict(store.add_rule(s, actor, rule))
    if json_:
        emit_json(out)
    else:
        typer.echo(f"rule {out['id']} {name!r} added: {out['definition']} ({severity})")


rules_remove_app = typer.Typer()


@rules_remove_app.command("remove")
def rules_remove(
    name: Annotated[str, typer.Argument(metavar="NAME|ID")],
    purge: Annotated[bool, typer.Option("--purge", help="Also delete the rule's alerts and their history.")] = False,
    registry: RegistryOpt = None,
) -> None:
    """Delete a rule (admins). A rule with alerts needs --purge; `disable` keeps history."""
    with acting(settings(registry_url=registry)) as (s, actor):
        n = store.remove_rule(s, actor, name, purge=purge)
    typer.echo(f"rule {name!r} removed" + (f" with {n} alert(s)" if n else ""))


rules_enable_app = typer.Typer()


@rules_enable_app.command("enable")
def rules_enable(name: Annotated[str, typer.Argument(metavar="NAME|ID")], registry: RegistryOpt = None) -> None:
    """Enable a rule (admins)."""
    with acting(settings(registry_url=registry)) as (s, actor):
        store.set_rule_enabled(s, actor, name, True)
    typer.echo(f"rule {name!r} enabled")


rules_disable_app = typer.Typer()


@rules_disable_app.command("disable")
def rules_disable(name: Annotated[str, typer.Argument(metavar="NAME|ID")], registry: RegistryOpt = None) -> None:
    """Disable a rule (admins); its open alerts are resolved."""
    with acting(settings(registry_url=registry)) as (s, actor):
        store.set_rule_enabled(s, actor, name, False)
    typer.echo(f"rule {name!r} disabled")

"""``iot gateways``: broker credentials that publish for many devices under one topic prefix.

Exit codes: :class:`iot.cli.toolkit.ExitCode`.
"""

from typing import Annotated

import typer

from iot.cli import output
from iot.cli.acting import acting
from iot.cli.toolkit import fail, print_table, settings
from registry import gateways as gw

app = typer.Typer(no_args_is_help=True)

RegistryOpt = Annotated[str | None, typer.Option("--registry", help="Registry URL (env IOT_REGISTRY_URL).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Its broker account, as its topics name it.")],
    prefix: Annotated[
        str | None, typer.Option("--prefix", help="Topic filter it may write, e.g. 'zigbee2mqtt/#'.")
    ] = None,
    sparkplug: Annotated[
        str | None,
        typer.Option("--sparkplug", metavar="GROUP/EDGE", help="A Sparkplug B edge node: its own namespace only."),
    ] = None,
    site: Annotated[str | None, typer.Option("--site")] = None,
    registry: RegistryOpt = None,
) -> None:
    """Register a gateway credential; its secret is printed once (admins)."""
    if (prefix is None) == (sparkplug is None):
        fail("give one of --prefix or --sparkplug GROUP/EDGE")
    s = settings(registry_url=registry)
    with acting(s) as (session, actor):
        if sparkplug is not None:
            secret = gw.add_sparkplug_gateway(session, actor, name, sparkplug, site, s.topic_root)
            where = f"Sparkplug edge node {sparkplug}'s topics"
        else:
            secret = gw.add_gateway(session, actor, name, prefix or "", site, s.topic_root)
            where = f"under {prefix}"
    typer.echo(f"added gateway {name}: writes {where} after the next `iot registry export-mosquitto`")
    typer.echo(f"secret (shown once, store it now): {secret}")


@app.command("list")
def list_(as_json: JsonOpt = False, fmt: output.FormatOpt = None, registry: RegistryOpt = None) -> None:
    """Gateways (viewers; a site-limited key sees its sites' gateways)."""
    with acting(settings(registry_url=registry)) as (session, actor):
        rows = [gw.as_dict(g) for g in gw.list_gateways(session, actor)]
    if output.machine(fmt, as_json, rows, gw.COLUMNS):
        return
    cols = ("name", "prefix", "site", "status", "created_at")
    print_table(cols, ([r[c] for c in cols] for r in rows), title=f"{len(rows)} gateways")


@app.command("retire")
def retire(name: Annotated[str, typer.Argument(metavar="NAME")], registry: RegistryOpt = None) -> None:
    """Retire a gateway for good: its secret is dropped, the next export leaves it out (admins)."""
    with acting(settings(registry_url=registry)) as (session, actor):
        gw.retire_gateway(session, actor, name)
    typer.echo(f"gateway {name}: retired")

"""``iot alerts channels add|list|remove`` (Core: ``channels list`` loads no ORM) and, loaded by
name when invoked, ``channels test`` from :mod:`iot.cli.notify_send` (the notifier, its outbox and
transports)."""

from __future__ import annotations

from typing import Annotated

import typer

from iot.cli import output
from iot.cli.acting import acting, reading
from iot.cli.lazy import Lazy, lazy_group
from iot.cli.toolkit import fail, print_table, settings
from registry.notify.channels import (
    CHANNEL_KINDS,
    COLUMNS,
    DEFAULT_EVENTS,
    ChannelSpec,
    add_channel,
    list_channels,
    remove_channel,
)

app = typer.Typer(
    cls=lazy_group(
        {
            "test": Lazy(
                "notify_send",
                "test_app",
                "Send a test notification now and print the outcome; exit 1 if it failed.",
                group=False,
            )
        }
    ),
    no_args_is_help=True,
    help="Where alert notifications go: webhooks, Slack, e-mail.",
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
RegistryOpt = Annotated[str | None, typer.Option("--registry", help="Registry URL (env IOT_REGISTRY_URL).")]


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="channel name")],
    kind: Annotated[str, typer.Option("--kind", help="webhook | slack | email")],
    url: Annotated[
        str | None, typer.Option("--url", help="http(s) URL, or secret:NAME to take it from a secret")
    ] = None,
    to: Annotated[str | None, typer.Option("--to", help="e-mail recipients, comma-separated")] = None,
    secret: Annotated[
        str | None,
        typer.Option(
            "--secret",
            help="name of a secret in IOT_NOTIFY_SECRETS: HMAC key (webhook), SMTP password; "
            "SITE/NAME is site SITE's (the only ones a site-limited key may name)",
        ),
    ] = None,
    min_severity: Annotated[str, typer.Option("--min-severity", help="send this severity and above")] = "info",
    site: Annotated[
        str | None, typer.Option("--site", help="only alerts of this site (default: all; unrestricted keys only)")
    ] = None,
    events: Annotated[str, typer.Option("--events", help="comma-separated: opened,acknowledged,resolved")] = ",".join(
        DEFAULT_EVENTS
    ),
    renotify_minutes: Annotated[int, typer.Option("--renotify-minutes", help="remind while still open; 0: off")] = 0,
    smtp_host: Annotated[str | None, typer.Option("--smtp-host")] = None,
    smtp_port: Annotated[int, typer.Option("--smtp-port")] = 587,
    smtp_user: Annotated[str | None, typer.Option("--smtp-user")] = None,
    smtp_from: Annotated[str | None, typer.Option("--smtp-from")] = None,
    smtp_tls: Annotated[str, typer.Option("--smtp-tls", help="starttls | ssl | none")] = "starttls",
    smtp_ca_file: Annotated[str | None, typer.Option("--smtp-ca-file", help="trust this CA (private relays)")] = None,
    allow_missing_secret: Annotated[
        bool,
        typer.Option(
            "--allow-missing-secret",
            help="add it although the secret is not set here (the notifier runs with other settings)",
        ),
    ] = False,
    registry: RegistryOpt = None,
) -> None:
    """Add a channel (admins). Secrets are referenced by name, never given on the command line; a
    secret set nowhere in this environment's settings is refused (--allow-missing-secret: warned)."""
    if kind not in CHANNEL_KINDS:
        fail(f"unknown --kind {kind!r} (use {', '.join(CHANNEL_KINDS)})")
    if kind == "email":
        if to is None:
            fail("an email channel needs --to")
        target = to
        options = {"host": smtp_host, "port": smtp_port, "tls": smtp_tls}
        options |= {k: v for k, v in (("user", smtp_user), ("from", smtp_from), ("ca_file", smtp_ca_file)) if v}
    else:
        if url is None:
            fail(f"a {kind} channel needs --url")
        target, options = url, {}
    spec = ChannelSpec(
        name,
        kind,
        target,
        secret,
        min_severity,
        site,
        tuple(e.strip() for e in events.split(",") if e.strip()),
        renotify_minutes,
        options,
    )
    s = settings(registry_url=registry)
    unset = [n for n in spec.secrets() if n not in s.notify_secrets]
    with acting(s) as (session, actor):
        add_channel(session, actor, spec)  # checks the key may name these secrets: only then say which are unset
        if unset and not allow_missing_secret:  # leaving the block by an error rolls the channel back
            fail(
                f"secret {', '.join(map(repr, unset))} is not set in IOT_NOTIFY_SECRETS (nor iot_notify_secrets in "
                "IOT_SECRETS_DIR): each notification would fail; set it, or give --allow-missing-secret if the "
                "notifier runs with other settings"
            )
    for n in unset:
        typer.echo(f"warning: secret {n!r} is not set here: the notifier must have it in IOT_NOTIFY_SECRETS", err=True)
    typer.echo(f"channel {name} added ({kind}, {min_severity} and above, site {site or 'all'})")


@app.command("list")
def list_cmd(as_json: JsonOpt = False, fmt: output.FormatOpt = None, registry: RegistryOpt = None) -> None:
    """Channels (targets redacted, secrets by name only)."""
    with reading(settings(registry_url=registry)) as (db, actor):
        rows = list_channels(db, actor)
    if output.machine(fmt, as_json, rows, COLUMNS):
        return
    print_table(
        ["NAME", "KIND", "TARGET", "SECRET", "MIN SEVERITY", "SITE", "EVENTS", "RENOTIFY", "ENABLED"],
        (
            [
                r["name"],
                r["kind"],
                r["target"],
                r["secret"] or "",
                r["min_severity"],
                r["site"] or "all",
                ",".join(r["events"]),
                f"{r['renotify_minutes']} min" if r["renotify_minutes"] else "off",
                "yes" if r["enabled"] else "no",
            ]
            for r in rows
        ),
    )


@app.command("remove")
def remove(name: Annotated[str, typer.Argument()], registry: RegistryOpt = None) -> None:
    """Remove a channel and its queued notifications (admins)."""
    with acting(settings(registry_url=registry)) as (session, actor):
        remove_channel(session, actor, name)
    typer.echo(f"channel {name} removed")

"""``iot deadletters list|show|replay``: parse, open the registry, call one function.

Exit codes: :class:`iot.cli.toolkit.ExitCode`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer

from core.config import Settings
from ingest.broker import BrokerAddress, BrokerConfigError, parse_broker_url
from ingest.republish import publish_all
from iot.cli.acting import acting
from iot.cli.toolkit import ExitCode, emit_json, fail, iso, parse_duration, print_table, settings
from registry.auth import record_audit, require
from registry.db import make_engine
from registry.deadletters import DeadLetterRecord, DeadLetterStore
from registry.deadletters import replay as replay_letters

app = typer.Typer(no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
RegistryOpt = Annotated[str | None, typer.Option("--registry", help="Registry URL (env IOT_REGISTRY_URL).")]
PREVIEW_CHARS = 60


@contextmanager
def _store(s: Settings) -> Iterator[DeadLetterStore]:
    engine = make_engine(s.resolved_registry_url())
    try:
        store = DeadLetterStore(engine)
        store.connect()
        yield store
    finally:
        engine.dispose()


def preview(payload: bytes, limit: int = PREVIEW_CHARS) -> str:
    """The first ``limit`` characters, undecodable bytes and control characters escaped."""
    text = payload.decode("utf-8", "backslashreplace")
    out = "".join(c if c.isprintable() else repr(c)[1:-1] for c in text[:limit])
    return out + ("…" if len(text) > limit else "")


def _table(letters: Sequence[DeadLetterRecord]) -> None:
    print_table(
        ["id", "received", "reason", "device", "topic", "detail", "payload"],
        [
            (
                d.id,
                d.received_at,
                d.reason,
                d.device_id or "",
                d.topic,
                preview(d.detail.encode(), 80),
                preview(d.payload) + (" (replayed)" if d.replayed_at else ""),
            )
            for d in letters
        ],
    )


@app.command("list")
def list_(
    reason: Annotated[str | None, typer.Option("--reason", help="Only this reason.")] = None,
    device: Annotated[str | None, typer.Option("--device", help="Only this device.")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Received within, e.g. 24h.")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most N, newest first.")] = 50,
    json: JsonOpt = False,
    registry: RegistryOpt = None,
) -> None:
    """Dead letters, newest first."""
    after = datetime.now(UTC) - timedelta(seconds=parse_duration(since)) if since else None
    with _store(settings(registry_url=registry)) as store:
        letters = store.list(reason=reason, device_id=device, since=after, limit=limit)
    if json:
        emit_json([d.as_dict() for d in letters])
    elif not letters:
        typer.echo("no dead letters")
    else:
        _table(letters)


@app.command("show")
def show(
    id: Annotated[int, typer.Argument(metavar="ID")],
    json: JsonOpt = False,
    registry: RegistryOpt = None,
) -> None:
    """One dead letter with its full payload (text if UTF-8, else base64)."""
    with _store(settings(registry_url=registry)) as store:
        letter = store.get(id)
    if letter is None:
        fail(f"no dead letter with id {id}", ExitCode.FAILED)
    record = letter.as_dict()
    if json:
        emit_json(record)
        return
    width = max(len(k) for k in record)
    for key, value in record.items():
        if key != "payload":
            shown = iso(value) if isinstance(value, datetime) else "" if value is None else value
            typer.echo(f"{key:<{width}}  {shown}")
    typer.echo(f"{'payload':<{width}}")
    typer.echo(record["payload"])


@app.command("replay")
def replay(
    ids: Annotated[list[int] | None, typer.Argument(metavar="ID", show_default=False)] = None,
    reason: Annotated[str | None, typer.Option("--reason", help="All not yet replayed with this reason.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="All not yet replayed.")] = False,
    broker: Annotated[str | None, typer.Option("--broker", help="Broker URL (env IOT_BROKER_URL).")] = None,
    registry: RegistryOpt = None,
) -> None:
    """Republish raw payloads to their topics for the daemon to decode again.

    QoS 1; acknowledged ones are marked replayed; ones that fail again return as new rows.
    """
    if not ids and not reason and not all_:
        fail("say what to replay: dead letter IDs, --reason R or --all")
    if ids and (reason or all_):
        fail("give either IDs or --reason/--all, not both")
    s = settings(registry_url=registry, broker_url=broker)
    addr = _broker_address(s)
    with _store(s) as store:
        _authorise(store, s, len(ids or []) or None, reason)
        if ids:
            missing = sorted(set(ids) - {d.id for d in store.get_many(ids)})
            if missing:
                fail(f"no dead letter with id {', '.join(map(str, missing))}", ExitCode.FAILED)
            chosen = list(dict.fromkeys(ids))
        else:
            chosen = store.ids(reason=reason, replayed=False)
        if not chosen:
            typer.echo("no dead letters to replay")
            return
        done = _replay(store, chosen, addr)
    typer.echo(f"replayed {done} of {len(chosen)} dead letters to {addr.host}:{addr.port}")
    if done < len(chosen):
        fail(f"{len(chosen) - done} not acknowledged by the broker: run replay again", ExitCode.FAILED)


def _broker_address(s: Settings) -> BrokerAddress:
    secret = s.broker_password.get_secret_value() if s.broker_password else None
    try:
        addr = parse_broker_url(s.broker_url, password=secret)
    except BrokerConfigError as e:
        fail(str(e))
    if addr.embedded:
        fail("replay needs a running broker: pass --broker mqtt://host:port or set IOT_BROKER_URL")
    return addr


def _authorise(store: DeadLetterStore, s: Settings, count: int | None, reason: str | None) -> None:
    """Replaying is an operator's action, and it is audited."""
    with acting(s, store.engine) as (session, actor):
        require(actor, "operator", "replay dead letters")
        record_audit(session, actor, "deadletters.replay", reason or "*", ids=count)


def _replay(store: DeadLetterStore, ids: list[int], addr: BrokerAddress) -> int:
    return replay_letters(store, ids, lambda msgs: publish_all(addr, msgs))

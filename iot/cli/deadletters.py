"""``iot deadletters list|show|replay``: parse, check the API key, open the registry, call one function.

Reading takes a viewer key, replaying an operator key (while no key exists: ``local-admin``); a
site-limited key sees and replays only letters of devices registered at its sites. Payloads are
printed only when asked (``show``, ``list --payload``).

Exit codes: :class:`iot.cli.toolkit.ExitCode`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from core.config import Settings
from core.devicetext import for_terminal
from ingest.mqtt.broker import BrokerAddress, BrokerConfigError, parse_broker_url
from iot.cli import output
from iot.cli.acting import authorised
from iot.cli.toolkit import ExitCode, emit_json, fail, parse_duration, print_table, settings, shown
from iot.replay import publish_all
from registry.auth import Actor, record_audit
from registry.db import make_engine
from registry.deadletters import RECORD_COLUMNS, DeadLetterRecord, DeadLetterStore
from registry.deadletters import replay as replay_letters

app = typer.Typer(no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
RegistryOpt = Annotated[str | None, typer.Option("--registry", help="Registry URL (env IOT_REGISTRY_URL).")]
PREVIEW_CHARS = 60
MAX_LIST = 10_000


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
    return for_terminal(text[:limit]) + ("…" if len(text) > limit else "")


def listed(letter: DeadLetterRecord, with_payload: bool = False) -> dict[str, Any]:
    """A letter for ``list --json``: a bounded preview instead of the payload unless asked."""
    record = letter.as_dict()
    if not with_payload:
        for key in ("payload", "payload_encoding"):
            record.pop(key, None)
        record["payload_preview"] = preview(letter.payload)
    return record


def listed_columns(with_payload: bool = False) -> tuple[str, ...]:
    """The keys of :func:`listed`, in order."""
    if with_payload:
        return RECORD_COLUMNS
    return (*(c for c in RECORD_COLUMNS if c not in ("payload", "payload_encoding")), "payload_preview")


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
    limit: Annotated[int, typer.Option("--limit", min=1, max=MAX_LIST, help="At most N, newest first.")] = 50,
    payload: Annotated[bool, typer.Option("--payload", help="With --json: include whole payloads.")] = False,
    json: JsonOpt = False,
    fmt: output.FormatOpt = None,
    registry: RegistryOpt = None,
) -> None:
    """Dead letters, newest first, with a short payload preview (viewers)."""
    after = datetime.now(UTC) - timedelta(seconds=parse_duration(since)) if since else None
    s = settings(registry_url=registry)
    actor = authorised(s, "viewer", "read dead letters")
    with _store(s) as store:
        letters = store.list(reason=reason, device_id=device, since=after, limit=limit, sites=actor.sites)
    if output.machine(fmt, json, [listed(d, payload) for d in letters], listed_columns(payload)):
        return
    if not letters:
        typer.echo("no dead letters")
    else:
        _table(letters)


@app.command("show")
def show(
    id: Annotated[int, typer.Argument(metavar="ID")],
    json: JsonOpt = False,
    registry: RegistryOpt = None,
) -> None:
    """One dead letter with its full payload (text if UTF-8, else base64; viewers). Control
    characters (ESC, C1, CR, bidi) are shown escaped, as in ``list``; newlines and tabs kept."""
    s = settings(registry_url=registry)
    actor = authorised(s, "viewer", "read dead letters")
    with _store(s) as store:
        found = store.get_many([id], sites=actor.sites)
    letter = found[0] if found else None
    if letter is None:
        fail(f"no dead letter with id {id}", ExitCode.FAILED)
    record = letter.as_dict()
    if json:
        emit_json(record)
        return
    width = max(len(k) for k in record)
    for key, value in record.items():
        if key != "payload":
            typer.echo(f"{key:<{width}}  {shown(value)}")
    typer.echo(f"{'payload':<{width}}")
    typer.echo(for_terminal(record["payload"], keep="\n\t"))


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
    Operators; a site-limited key replays only letters of devices at its sites.
    """
    if not ids and not reason and not all_:
        fail("say what to replay: dead letter IDs, --reason R or --all")
    if ids and (reason or all_):
        fail("give either IDs or --reason/--all, not both")
    s = settings(registry_url=registry, broker_url=broker)
    addr = _broker_address(s)
    actor = authorised(s, "operator", "replay dead letters")
    with _store(s) as store:
        if ids:
            missing = sorted(set(ids) - {d.id for d in store.get_many(ids, sites=actor.sites)})
            if missing:
                fail(f"no dead letter with id {', '.join(map(str, missing))}", ExitCode.FAILED)
            chosen = list(dict.fromkeys(ids))
        else:
            chosen = store.ids(reason=reason, replayed=False, sites=actor.sites)
        _audit(store, actor, len(ids or []) or None, reason)
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
    if addr.username is not None and addr.username == s.client_id:
        fail(
            f"replay must not connect as the ingest account {addr.username!r} (a broker binding client ids "
            "to usernames would hand it the daemon's session): use the replay account "
            "(`iot registry export-mosquitto --replay-user …`) in --broker"
        )
    return addr


def _audit(store: DeadLetterStore, actor: Actor, count: int | None, reason: str | None) -> None:
    """Replaying is audited."""
    with store.engine.begin() as conn:
        record_audit(conn, actor, "deadletters.replay", reason or "*", ids=count, sites=actor.sites)


def _replay(store: DeadLetterStore, ids: list[int], addr: BrokerAddress) -> int:
    return replay_letters(store, ids, lambda msgs: publish_all(addr, msgs))

"""``iot mappings check|test``: try a mappings file without a broker or any store.

``check FILE`` loads it (unknown keys, a filter with no ``{device}``, a bad unit or time zone are
one-line errors, exit 2) and lists its rules, their MQTT filters and the pairs of rules that can
take the same topic (the earlier in the file wins). ``test FILE --topic T --payload P`` prints as
JSON what would be stored (device, kind, gateway, then per measurement and time: fields, units
and how each unit is stored: ``declared``, once in ``field_units``, or ``tag``, the point's ``unit``
tag) or the dead letter's reason (exit 1).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typer

from core import timefmt
from core.model import Bundle, Decoded, Document, Rejected, StatusChange
from ingest.decoding.decode import Decoder
from ingest.decoding.mappings import MappingError, load_mappings, overlaps
from ingest.decoding.topics import Limits, TopicRule, Topics
from iot.cli.toolkit import ExitCode, emit_json, fail, settings

app = typer.Typer(no_args_is_help=True)


def _load(file: Path) -> list[TopicRule]:
    try:
        return load_mappings(file, settings().topic_root)
    except MappingError as e:
        fail(f"{file}: {e}")


@app.command("check")
def check(file: Path = typer.Argument(..., help="the mappings file (TOML)")) -> None:
    """Validate a mappings file; list its rules, filters and overlaps (the first in the file wins)."""
    rules = _load(file)
    for i, rule in enumerate(rules, 1):
        gateway = f"  gateway {rule.gateway}" if rule.gateway else ""
        typer.echo(f"{i}. {getattr(rule, 'label', type(rule).__name__)}: subscribes {rule.filter}{gateway}")
    for o in overlaps(rules):
        typer.echo(f"overlap: {o.winner} and {o.loser} both take e.g. {o.example!r}: {o.winner} wins (first in file)")
    typer.echo(f"ok: {len(rules)} rules")


def _result(decoded: Decoded, topics: Topics, topic: str) -> dict[str, Any]:
    out: dict[str, Any] = {"topic": topic, "gateway": topics.gateway_of(topic)}
    if isinstance(decoded, StatusChange):
        at = timefmt.iso(decoded.at)
        return out | {"device": decoded.device_id, "kind": "status", "online": decoded.online, "time": at}
    if isinstance(decoded, Document):
        return out | {"device": decoded.device_id, "collection": decoded.collection, "document": decoded.body}
    source = topics.source(topic)
    if isinstance(decoded, Bundle):  # a Sparkplug birth or death: readings and status together
        out["status"] = [{"device": c.device_id, "online": c.online, "time": timefmt.iso(c.at)} for c in decoded.status]
    points = decoded.points if isinstance(decoded, Bundle) else decoded
    readings: dict[tuple[str, int], dict[str, Any]] = {}
    for p in points:
        at = timefmt.iso_ns(p.ts_ns)
        r = readings.setdefault(
            (p.measurement, p.ts_ns),
            {"measurement": p.measurement, "time": at, "time_ns": p.ts_ns, "fields": {}, "units": {}, "unit_as": {}},
        )
        r["fields"] |= p.fields
        if "unit" in p.tags:
            r["units"] |= dict.fromkeys(p.fields, p.tags["unit"])
            r["unit_as"] |= dict.fromkeys(p.fields, "tag")
        if p.declared is not None:
            r["units"] |= p.declared.units
            r["unit_as"] |= dict.fromkeys(p.declared.units, "declared")
        r |= {k: v for k, v in p.tags.items() if k != "unit"}
    return out | {"device": source.device_id, "kind": source.kind.value, "readings": list(readings.values())}


@app.command("test")
def test(
    file: Path = typer.Argument(..., help="the mappings file (TOML)"),
    topic: str = typer.Option(..., "--topic", help="the MQTT topic the message arrives on"),
    payload: str = typer.Option(..., "--payload", help="the payload (UTF-8 text)"),
) -> None:
    """What one message would become: the stored readings as JSON, or the dead-letter reason (exit 1)."""
    rules = _load(file)
    s = settings()
    topics = Topics(rules, Limits(s.max_fields_per_message, s.max_units_per_message))
    decoder = Decoder(topics=topics, max_payload_bytes=s.max_payload_bytes, future_window_s=s.future_window)
    try:
        decoded = decoder.decode(topic, payload.encode("utf-8", "surrogateescape"), time.time_ns())
    except Rejected as e:
        device = topics.device_of(topic)
        emit_json({"topic": topic, "device": device, "dead_letter": e.reason.value, "detail": e.detail})
        raise typer.Exit(ExitCode.FAILED) from None
    emit_json(_result(decoded, topics, topic))

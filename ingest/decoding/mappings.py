"""A mappings file (TOML) -> the ordered topic rules of the daemon (pure, no I/O but reading the file).

Each ``[[mapping]]`` is either a preset (``preset = "tasmota"`` plus the preset's options, see
``ingest.decoding.presets``) or one topic layout::

    [[mapping]]
    topic = "plant/+/{device}/env"          # MQTT filter; one level is {device}; +, #, {names}
    kind = "telemetry"                      # telemetry | metrics | status | "{level}"
    payload = "json"                        # json (default) | value | senml | status
    time = { path = "t", format = "rfc3339", timezone = "UTC" }  # absent: arrival time
    fields = { temperature = "temp_c" }     # name = dotted path; absent: every numeric leaf
    separator = "."                         # joins the keys of a flattened leaf
    units = { temperature = "Cel" }
    field = "value"                         # payload = "value": the field name, or "{level}"
    unit = "Cel"                            # payload = "value": its unit
    gateway = "{app}"                       # a fixed name or a level: who publishes for the device

The built-in contract ``{topic_root}/{device}/{kind}`` is a mapping like any other:
``[[mapping]] preset = "contract"`` (option ``root``) puts it where it stands in the file; a file
without it keeps the contract on, implicitly LAST; ``contract = false`` at the top of the file
turns it off. Rules are tried in file order and the first that takes a topic decides it
(:func:`overlaps` names the pairs where that matters).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.model import Kind
from ingest.decoding.codecs import SourceCodec
from ingest.decoding.mapped import (
    MAPPED_KINDS,
    TIME_FORMATS,
    BareValue,
    JsonReadings,
    StatusWords,
    TimeSpec,
    no_units,
    path_of,
    units_by_name,
    zone,
)
from ingest.decoding.mapping_rule import CodecFor, FilterError, MappingRule, TopicFilter
from ingest.decoding.names import TAG_VALUE, field_key_problem
from ingest.decoding.presets import PRESETS, PresetError
from ingest.decoding.senml import SenmlJson
from ingest.decoding.sparkplug import sparkplug_rules
from ingest.decoding.topics import ContractTopics, TopicRule

TOP_KEYS = frozenset({"mapping", "contract"})
MAPPING_KEYS = frozenset(
    {"topic", "kind", "payload", "time", "fields", "separator", "units", "field", "unit", "gateway"}
)
TIME_KEYS = frozenset({"path", "format", "timezone"})
PAYLOADS = ("json", "value", "senml", "status")


class MappingError(ValueError):
    """The file cannot be used (message: where and why, one line)."""


def load_mappings(path: str | Path, topic_root: str = "devices") -> list[TopicRule]:
    """The rules of the mappings file at ``path``, in order, the built-in contract included
    (unless the file turns it off). Raises MappingError."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise MappingError(f"cannot read mappings file {str(path)!r}: {getattr(e, 'strerror', None) or e}") from None
    return parse_mappings(text, topic_root)


def parse_mappings(text: str, topic_root: str = "devices") -> list[TopicRule]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise MappingError(f"not valid TOML: {e}") from None
    _known(doc, TOP_KEYS, "the file")
    contract = doc.get("contract", True)
    if type(contract) is not bool:
        raise MappingError("contract must be true or false")
    entries = doc.get("mapping", [])
    if type(entries) is not list or not all(type(m) is dict for m in entries):
        raise MappingError("mappings are [[mapping]] tables")
    rules: list[TopicRule] = []
    placed = False
    for i, entry in enumerate(entries, 1):
        where = f"mapping {i}"
        try:
            if entry.get("preset") == "contract":
                _known(entry, frozenset({"preset", "root"}), where)
                root = entry.get("root", topic_root)
                if type(root) is not str or not root or any(c in root for c in "+#{}"):
                    raise MappingError(f"{where}: root must be a topic prefix without wildcards")
                rules.append(ContractTopics(root))
                placed = True
            elif entry.get("preset") == "sparkplug_b":  # state and rebirths bound by the composition layer
                _known(entry, frozenset({"preset"}), where)
                rules += sparkplug_rules()
            elif "preset" in entry:
                rules += _preset(entry, where)
            else:
                rules.append(_mapping(entry, where))
        except (FilterError, PresetError) as e:
            raise MappingError(f"{where}: {e}") from None
    if contract and not placed:
        rules.append(ContractTopics(topic_root))
    if not rules:
        raise MappingError("no mappings and the contract turned off: nothing would be ingested")
    return rules


def _known(table: Mapping[str, Any], keys: frozenset[str], where: str) -> None:
    unknown = sorted(set(table) - keys)
    if unknown:
        raise MappingError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(keys))})")


def _preset(entry: dict[str, Any], where: str) -> list[TopicRule]:
    name = entry["preset"]
    preset = PRESETS.get(name) if type(name) is str else None
    if preset is None:
        raise MappingError(
            f"{where}: unknown preset {str(name)[:40]!r} (known: contract, sparkplug_b, {', '.join(PRESETS)})"
        )
    _known(entry, frozenset({"preset", *preset.options}), f"{where} (preset {name})")
    return list(preset.build({k: v for k, v in entry.items() if k != "preset"}))


def _str(entry: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str | None:
    value = entry.get(key, default)
    if value is not None and type(value) is not str:
        raise MappingError(f"{where}: {key} must be a string")
    return value


def _table(entry: Mapping[str, Any], key: str, where: str) -> dict[str, str] | None:
    value = entry.get(key)
    if value is None:
        return None
    if type(value) is not dict or not all(type(v) is str for v in value.values()):
        raise MappingError(f"{where}: {key} must be a table of strings")
    return value


def _unit(unit: str, where: str) -> str:
    if TAG_VALUE.fullmatch(unit) is None:
        raise MappingError(f"{where}: unit {unit[:40]!r} must be 1-64 of [A-Za-z0-9_.:/%+-]")
    return unit


def _field_name(name: str, where: str) -> str:
    problem = field_key_problem(name)
    if problem is not None:
        raise MappingError(f"{where}: {problem.detail}")
    return name


def _time(entry: Mapping[str, Any], where: str) -> TimeSpec | None:
    spec = entry.get("time")
    if spec is None:
        return None
    if type(spec) is not dict:
        raise MappingError(f'{where}: time must be a table like {{ path = "t", format = "rfc3339" }}')
    _known(spec, TIME_KEYS, f"{where} time")
    path, fmt, tz = _str(spec, "path", where), _str(spec, "format", where, "auto"), _str(spec, "timezone", where, "UTC")
    if not path:
        raise MappingError(f"{where}: time needs a path")
    if fmt not in TIME_FORMATS:
        raise MappingError(f"{where}: time format {fmt!r} (one of {', '.join(TIME_FORMATS)})")
    assert tz is not None
    try:
        zone(tz)
    except Exception:  # ZoneInfoNotFoundError, ValueError: both mean "no such zone"
        raise MappingError(f"{where}: timezone {tz[:40]!r} is not an IANA time zone (e.g. Europe/Berlin)") from None
    try:
        return TimeSpec(path_of(path), fmt, tz)  # type: ignore[arg-type]
    except ValueError as e:
        raise MappingError(f"{where}: {e}") from None


def _mapping(entry: dict[str, Any], where: str) -> MappingRule:
    _known(entry, MAPPING_KEYS, where)
    topic = _str(entry, "topic", where)
    if not topic:
        raise MappingError(f"{where}: a mapping needs a topic (or a preset)")
    where = f"{where} ({topic[:60]})"
    parsed = TopicFilter.parse(topic)
    kind_text = _str(entry, "kind", where, "telemetry")
    assert kind_text is not None
    kind: Kind | str
    if kind_text.startswith("{") and kind_text.endswith("}"):
        kind = kind_text[1:-1]
    else:
        found = {k.value: k for k in MAPPED_KINDS}.get(kind_text)
        if found is None:
            raise MappingError(f"{where}: kind {kind_text!r} (telemetry, metrics, status or a {{level}})")
        kind = found
    payload = _str(entry, "payload", where, "status" if kind is Kind.STATUS else "json")
    if payload not in PAYLOADS:
        raise MappingError(f"{where}: payload {payload!r} (one of {', '.join(PAYLOADS)})")
    if kind is Kind.STATUS and payload != "status":
        raise MappingError(f'{where}: a status mapping reads payload = "status"')
    if payload == "status" and kind is not Kind.STATUS and isinstance(kind, Kind):
        raise MappingError(f'{where}: payload = "status" is for kind = "status"')
    used = {
        "json": {"time", "fields", "separator", "units"},
        "value": {"field", "unit"},
        "senml": set(),
        "status": set(),
    }[payload]
    stray = sorted(set(entry) & (MAPPING_KEYS - {"topic", "kind", "payload", "gateway"}) - used)
    if stray:
        raise MappingError(f"{where}: {stray[0]!r} does not apply to payload = {payload!r}")
    reading = _reader(entry, payload, parsed, where)
    status = StatusWords()

    def codec_for(k: Kind, named: Mapping[str, str]) -> SourceCodec:
        return status if k is Kind.STATUS else reading(k, named)

    return MappingRule(where, topic, kind, codec_for, gateway=_str(entry, "gateway", where))


def _reader(entry: Mapping[str, Any], payload: str, parsed: TopicFilter, where: str) -> CodecFor:
    if payload == "json":
        fields = _table(entry, "fields", where)
        units = _table(entry, "units", where) or {}
        for name, unit in units.items():
            _unit(unit, where)
            if fields is not None and name not in fields:
                raise MappingError(f"{where}: units names {name!r}, which is not in fields")
        separator = _str(entry, "separator", where, ".")
        assert separator is not None
        try:
            paths = {_field_name(n, where): path_of(p) for n, p in fields.items()} if fields is not None else None
        except ValueError as e:
            raise MappingError(f"{where}: {e}") from None
        if paths is not None and not paths:
            raise MappingError(f"{where}: fields is empty")
        codec = JsonReadings(
            fields=paths,
            separator=separator,
            time=_time(entry, where),
            unit_of=units_by_name(units) if units else no_units,
        )
        return lambda k, n: codec
    if payload == "senml":
        senml = SenmlJson()
        return lambda k, n: senml
    if payload == "value":
        field = _str(entry, "field", where, "value")
        value_unit = _str(entry, "unit", where)
        assert field is not None
        if value_unit is not None:
            _unit(value_unit, where)
        if field.startswith("{") and field.endswith("}"):
            level = field[1:-1]
            if level not in parsed.names:
                raise MappingError(f"{where}: field {field!r} is not a level of the topic")
            return lambda k, n: BareValue(n[level], value_unit)
        value = BareValue(_field_name(field, where), value_unit)
        return lambda k, n: value
    status = StatusWords()
    return lambda k, n: status


@dataclass(frozen=True, slots=True)
class Overlap:
    """Two rules that both take ``example``: ``winner`` (earlier in the file) decides it."""

    winner: str
    loser: str
    example: str


def _label(rule: TopicRule) -> str:
    return str(getattr(rule, "label", type(rule).__name__))


def _filter(rule: TopicRule) -> TopicFilter:
    if isinstance(rule, MappingRule):
        return rule.topic
    if isinstance(rule, ContractTopics):
        return TopicFilter.parse(f"{rule.root}/{{device}}/#")
    raise TypeError(type(rule).__name__)


def overlaps(rules: Sequence[TopicRule]) -> list[Overlap]:
    """Every pair of rules that can take the same topic, earlier first (the earlier wins)."""
    found: list[Overlap] = []
    filters = [_filter(r) for r in rules]
    for i, a in enumerate(filters):
        for j in range(i + 1, len(filters)):
            example = a.overlaps(filters[j])
            if example is not None:
                found.append(Overlap(_label(rules[i]), _label(rules[j]), example))
    return found

"""A mapping's topic rule: an MQTT filter with named levels -> a :class:`Source` (pure).

A filter is MQTT's (``+`` one level, ``#`` the rest, last) where a whole level may be a name in
braces: ``{device}`` (required, exactly once) gives the device, another name (``{kind}``,
``{app}``, ``{field}``…) matches one level like ``+`` and can be read by the mapping. The filter
subscribed to is the same with every name replaced by ``+`` (:attr:`MappingRule.filter`).

A device level becomes a device id by replacing every character outside ``[A-Za-z0-9_.:-]`` with
``_`` (a Zigbee2MQTT friendly name ``Living Room`` is the device ``Living_Room``); a level that is
longer than 64 characters is refused (BAD_TOPIC, so dead-lettered). Two names differing only in
replaced characters are the same device.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from core.model import MEASUREMENTS, Kind, Reason, Rejected
from ingest.decoding.codecs import Source, SourceCodec
from ingest.decoding.topics import MAX_DEVICE_ID, Limits

_DEVICE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-")
_KINDS = {k.value: k for k in Kind}
CodecFor = Callable[[Kind, Mapping[str, str]], SourceCodec]  # (kind, named levels) -> the topic's codec


def device_id_of(level: str) -> str | None:
    """A topic level as a device id (other characters become ``_``), or None if it cannot be one."""
    if not 0 < len(level) <= MAX_DEVICE_ID:
        return None
    if _DEVICE_CHARS.issuperset(level):
        return level
    return "".join(c if c in _DEVICE_CHARS else "_" for c in level)


class FilterError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class TopicFilter:
    """A parsed filter: its levels (``None`` for ``+``/a name), the names' positions."""

    text: str
    levels: tuple[str, ...]
    names: Mapping[str, int]
    multi: bool  # ends in '#'

    @classmethod
    def parse(cls, text: str) -> TopicFilter:
        if not text or "\x00" in text:
            raise FilterError("a topic filter must be a non-empty string")
        levels = text.split("/")
        names: dict[str, int] = {}
        for i, level in enumerate(levels):
            if level == "#" and i != len(levels) - 1:
                raise FilterError(f"'#' must be the last level of {text!r}")
            if level.startswith("{") or level.endswith("}"):
                name = level[1:-1]
                if not (level.startswith("{") and level.endswith("}")) or not name.isidentifier():
                    raise FilterError(f"level {level!r} of {text!r}: a name is a whole level, like {{device}}")
                if name in names:
                    raise FilterError(f"{{{name}}} appears twice in {text!r}")
                names[name] = i
            elif ("+" in level or "#" in level) and level not in ("+", "#"):
                raise FilterError(f"level {level!r} of {text!r}: '+' and '#' must be whole levels")
        if "device" not in names:
            raise FilterError(f"topic {text!r} has no {{device}} level")
        multi = levels[-1] == "#"
        return cls(text, tuple(levels[:-1] if multi else levels), names, multi)

    @property
    def mqtt(self) -> str:
        """The filter to subscribe to: every name replaced by ``+``."""
        levels = ["+" if lv.startswith("{") else lv for lv in self.levels]
        return "/".join(levels + (["#"] if self.multi else []))

    def match(self, topic: str) -> list[str] | None:
        parts = topic.split("/")
        n = len(self.levels)
        if len(parts) < n or (len(parts) > n and not self.multi):
            return None
        if parts[0].startswith("$") and self.levels[0] != parts[0]:
            return None  # MQTT: wildcards never match a $SYS-like first level
        for want, got in zip(self.levels, parts, strict=False):
            if want != got and want != "+" and not want.startswith("{"):
                return None
        return parts

    def overlaps(self, other: TopicFilter) -> str | None:
        """A topic both filters match (an example), or None if there is none."""
        example: list[str] = []
        a, b = self.levels, other.levels
        for i in range(max(len(a), len(b))):
            if i >= len(a) or i >= len(b):
                rest_ok = self.multi if i >= len(a) else other.multi
                if not rest_ok:
                    return None
                longer = b if i >= len(a) else a
                example += [_example(x) for x in longer[i:]]
                return "/".join(example)
            x, y = a[i], b[i]
            wx, wy = _wild(x), _wild(y)
            if not wx and not wy and x != y:
                return None
            example.append(y if wx and not wy else _example(x))
        if len(a) == len(b) or self.multi or other.multi:
            return "/".join(example)
        return None


def _wild(level: str) -> bool:
    return level == "+" or level.startswith("{")


def _example(level: str) -> str:
    return "x" if _wild(level) else level


class MappingRule:
    """One mapping (or one topic of a preset) as a :class:`~ingest.decoding.topics.TopicRule`.

    ``kind`` is a Kind, or the name of a level that holds it; ``codec_for`` builds the payload
    reader for a topic from its kind and named levels (built once per topic: the decoder caches
    sources). ``gateway`` is None (devices publish for themselves), a fixed name, or ``{level}``.
    ``skip_devices``: device levels that are not devices (Zigbee2MQTT's ``bridge``): not this
    rule's topics.
    """

    def __init__(
        self,
        label: str,
        topic: str,
        kind: Kind | str,
        codec_for: CodecFor,
        *,
        gateway: str | None = None,
        skip_devices: frozenset[str] = frozenset(),
    ) -> None:
        self.label = label
        self.topic = TopicFilter.parse(topic)
        if not isinstance(kind, Kind) and kind not in self.topic.names:
            raise FilterError(f"kind {{{kind}}} is not a level of {topic!r}")
        if gateway is not None and gateway.startswith("{"):
            name = gateway[1:-1]
            if not gateway.endswith("}") or name not in self.topic.names:
                raise FilterError(f"gateway {gateway!r} is not a level of {topic!r}")
        elif gateway is not None and device_id_of(gateway) != gateway:
            raise FilterError(f"gateway {gateway[:40]!r} must be 1-64 of [A-Za-z0-9_.:-]")
        self.kind = kind
        self.codec_for = codec_for
        self.gateway = gateway
        self.filter = self.topic.mqtt
        self._device_at = self.topic.names["device"]
        self._skip = skip_devices

    def __repr__(self) -> str:
        return f"MappingRule({self.label!r}, {self.topic.text!r})"

    def _levels(self, topic: str) -> list[str] | None:
        if type(topic) is not str:
            return None
        parts = self.topic.match(topic)
        if parts is None or parts[self._device_at] in self._skip:
            return None
        return parts

    def source(self, topic: str, limits: Limits) -> Source | None:
        parts = self._levels(topic)
        if parts is None:
            return None
        device = device_id_of(parts[self._device_at])
        if device is None:
            raise Rejected(Reason.BAD_TOPIC, f"device level of {self.label} must be 1-{MAX_DEVICE_ID} characters")
        named = {name: parts[i] for name, i in self.topic.names.items()}
        if isinstance(self.kind, Kind):
            kind = self.kind
        else:
            found = _KINDS.get(named[self.kind])
            if found not in (Kind.TELEMETRY, Kind.METRICS, Kind.STATUS):
                raise Rejected(Reason.UNKNOWN_KIND, f"kind {named[self.kind][:32]!r} (telemetry, metrics or status)")
            kind = found
        codec = self.codec_for(kind, named)
        return Source(
            device,
            kind,
            MEASUREMENTS.get(kind, ""),
            limits.max_fields,
            limits.max_units,
            limits.fast_json,
            codec,
        )

    def device_of(self, topic: str) -> str | None:
        parts = self._levels(topic)
        return device_id_of(parts[self._device_at]) if parts is not None else None

    def gateway_of(self, topic: str) -> str | None:
        if self.gateway is None:
            return None
        if not self.gateway.startswith("{"):
            return self.gateway
        parts = self._levels(topic)
        return device_id_of(parts[self.topic.names[self.gateway[1:-1]]]) if parts is not None else None

"""The one place a topic becomes a source: device, kind, measurement, codec and limits (pure).

Every part of the daemon that needs to know whose message a topic carries asks a :class:`Topics`:
the decoder (for the :class:`~ingest.decoding.codecs.Source` a codec is handed), the router (the device a
dead letter is filed under) and the intake (a message routing failed on). A topic layout is one
:class:`TopicRule`; the built-in contract ``{root}/{device}/{kind}`` (:class:`ContractTopics`) is the
default; a mappings file (``ingest.decoding.mappings``) adds :class:`~ingest.decoding.mapping_rule.MappingRule`
s before or after it. The first rule that claims a topic decides it.

Rules (CONTRACT.md, "Topics"): ``{root}/{device_id}/{kind}``; device_id 1-64 of ``[A-Za-z0-9_.:-]``;
kind one of :class:`~core.model.Kind`. A topic under the root that breaks them is BAD_TOPIC or
UNKNOWN_KIND; a topic no rule claims is BAD_TOPIC.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from core.model import MEASUREMENTS, Kind, Reason, Rejected
from ingest.decoding.codecs import Source

MAX_DEVICE_ID = 64
_DEVICE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-")
_KINDS = {k.value: k for k in Kind}


@dataclass(frozen=True, slots=True)
class Limits:
    """What applies to every message of a source (copied into each :class:`Source`)."""

    max_fields: int = 256  # more distinct fields in one message -> TOO_MANY_FIELDS
    max_units: int = 16  # more distinct units in one (SenML) message -> TOO_MANY_FIELDS
    fast_json: bool = True  # orjson first; False: the stdlib reference path only


class TopicRule(Protocol):
    """One topic layout. ``source`` returns None for a topic that is not this rule's, raises
    ``Rejected`` for one of its topics that is malformed; ``device_of`` is the device a topic names,
    if it names one the allow-list accepts (for filing a dead letter), else None; ``gateway_of`` is
    the gateway a topic's messages come through (a bridge or network server publishing for many
    devices under one broker credential, its prefix enforced by the broker's ACL), else None.
    ``filter`` is the MQTT filter that covers the rule's topics (the daemon subscribes to it);
    ``gateway`` the rule's declared gateway (a name or ``{level}``), None for devices publishing
    for themselves."""

    filter: str
    gateway: str | None

    def source(self, topic: str, limits: Limits) -> Source | None: ...
    def device_of(self, topic: str) -> str | None: ...
    def gateway_of(self, topic: str) -> str | None: ...


def valid_device_id(device_id: str) -> bool:
    return 0 < len(device_id) <= MAX_DEVICE_ID and _DEVICE_CHARS.issuperset(device_id)


class ContractTopics:
    """The built-in contract: ``{root}/{device_id}/{kind}``."""

    def __init__(self, root: str = "devices") -> None:
        self.root = root
        self._prefix = root + "/"
        self.filter = root + "/#"
        self.gateway: str | None = None
        self.label = "the built-in contract"

    def _usage(self) -> Rejected:
        return Rejected(Reason.BAD_TOPIC, f"topic must look like {self.root}/<device_id>/<kind>")

    def parse(self, topic: str) -> tuple[str, Kind]:
        """``{root}/{device_id}/{kind}`` -> (device_id, kind); Rejected(BAD_TOPIC / UNKNOWN_KIND)."""
        if type(topic) is not str or not topic.startswith(self._prefix):
            raise self._usage()
        parts = topic[len(self._prefix) :].split("/")
        if len(parts) != 2:
            raise self._usage()
        device_id, kind = parts
        if not valid_device_id(device_id):
            raise Rejected(Reason.BAD_TOPIC, "device_id must be 1-64 of [A-Za-z0-9_.:-]")
        k = _KINDS.get(kind)
        if k is None:
            raise Rejected(Reason.UNKNOWN_KIND, f"unknown kind {kind[:32]!r}")
        return device_id, k

    def source(self, topic: str, limits: Limits) -> Source | None:
        if type(topic) is not str or not topic.startswith(self._prefix):
            return None
        device_id, kind = self.parse(topic)
        return Source(
            device_id, kind, MEASUREMENTS.get(kind, ""), limits.max_fields, limits.max_units, limits.fast_json
        )

    def device_of(self, topic: str) -> str | None:
        if type(topic) is not str or not topic.startswith(self._prefix):
            return None
        parts = topic[len(self._prefix) :].split("/")
        return parts[0] if len(parts) >= 2 and valid_device_id(parts[0]) else None

    def gateway_of(self, topic: str) -> str | None:
        return None  # a device of the built-in contract publishes for itself


class Topics:
    """The topic rules in order, with the limits every source gets. Stateless: the decoder caches
    the source of each topic it has seen."""

    def __init__(self, rules: Sequence[TopicRule], limits: Limits | None = None) -> None:
        if not rules:
            raise ValueError("at least one topic rule is needed")
        self.rules = tuple(rules)
        self.limits = limits or Limits()

    @classmethod
    def contract(cls, root: str = "devices", limits: Limits | None = None) -> Topics:
        """The built-in contract alone (the default when no mappings are configured)."""
        return cls([ContractTopics(root)], limits)

    def filters(self) -> list[str]:
        """The MQTT filters covering every rule's topics, in rule order, without repeats."""
        return list(dict.fromkeys(rule.filter for rule in self.rules))

    def source(self, topic: str) -> Source:
        """The source of ``topic``; Rejected(BAD_TOPIC / UNKNOWN_KIND) when no rule takes it."""
        for rule in self.rules:
            found = rule.source(topic, self.limits)
            if found is not None:
                return found
        first = self.rules[0]
        if isinstance(first, ContractTopics):
            raise first._usage()
        raise Rejected(Reason.BAD_TOPIC, "no topic rule takes this topic")

    def device_of(self, topic: str) -> str | None:
        """The device a topic names (for a dead letter), or None: never raises."""
        for rule in self.rules:
            try:
                device = rule.device_of(topic)
            except Exception:  # a rule's bug must not stop a dead letter from being filed
                device = None
            if device is not None:
                return device
        return None

    def gateway_of(self, topic: str) -> str | None:
        """The gateway of the first rule that takes ``topic`` (None: a device publishing for itself)."""
        for rule in self.rules:
            if rule.device_of(topic) is not None:
                return rule.gateway_of(topic)
        return None

"""The Sparkplug B topic rule: ``spBv1.0/{group}/{type}/{edge}[/{device}]`` -> a source whose codec
is the topic's :class:`~ingest.decoding.sparkplug.codec.SparkplugCodec`.

Readings are telemetry (``sensor_readings``) of the node (``{group}:{edge}``) or of the device
(``{group}:{edge}:{device}``); the node is the gateway of both. ``NCMD`` / ``DCMD`` (commands, the host
application's own output) and ``spBv1.0/STATE/…`` are not this rule's to ingest: the daemon subscribes
to the six edge-node message types only (:data:`SUBSCRIPTIONS`).
"""

from __future__ import annotations

from core.model import MEASUREMENTS, Kind, Reason, Rejected
from ingest.decoding.codecs import Source
from ingest.decoding.sparkplug import topic as sp
from ingest.decoding.sparkplug.codec import SparkplugCodec
from ingest.decoding.sparkplug.seq import SeqTracker
from ingest.decoding.sparkplug.state import MemoryState, NoRebirths, Rebirths, SparkplugState
from ingest.decoding.topics import Limits, TopicRule


def _filter(message_type: str) -> str:
    return f"{sp.PREFIX}+/{message_type}/+" + ("" if message_type in sp.NODE_TYPES else "/+")


SUBSCRIPTIONS = tuple(_filter(t) for t in sorted(sp.INGESTED))
"""The MQTT topic filters a Sparkplug host application reads (not commands, not STATE)."""


class SparkplugRule:
    """A :class:`~ingest.decoding.topics.TopicRule` for one Sparkplug B message type (``NBIRTH``,
    ``DDATA``…), with the state it decodes by: one rule per type, so each has its own subscription
    filter and the host's own ``NCMD`` and ``STATE`` publishes are never delivered back."""

    def __init__(
        self, message_type: str, state: SparkplugState, rebirths: Rebirths, seqs: SeqTracker | None = None
    ) -> None:
        if message_type not in sp.INGESTED:
            raise ValueError(f"{message_type} is not a message type a host application ingests")
        self.message_type = message_type
        self.filter = _filter(message_type)
        self.gateway: str | None = None  # per topic: the edge node (gateway_of)
        self.state = state
        self.rebirths = rebirths
        self.seqs = seqs

    def source(self, topic: str, limits: Limits) -> Source | None:
        found = sp.parse(topic)
        if found is None:
            return None
        if found.type not in sp.INGESTED:  # never subscribed to; said plainly if it comes anyway
            raise Rejected(Reason.UNKNOWN_KIND, f"{found.type} is a command, not ingested")
        if found.type != self.message_type:
            return None
        codec = SparkplugCodec(found, self.state, self.rebirths, self.seqs)
        return Source(
            found.device_id,
            Kind.TELEMETRY,
            MEASUREMENTS[Kind.TELEMETRY],
            limits.max_fields,
            limits.max_units,
            limits.fast_json,
            codec,
        )

    def device_of(self, topic: str) -> str | None:
        try:
            found = sp.parse(topic)
        except Rejected:
            return None
        return None if found is None or found.type != self.message_type else found.device_id

    def gateway_of(self, topic: str) -> str | None:
        try:
            found = sp.parse(topic)
        except Rejected:
            return None
        return None if found is None or found.type != self.message_type else found.node_id


def sparkplug_rules(
    state: SparkplugState | None = None, rebirths: Rebirths | None = None, seqs: SeqTracker | None = None
) -> list[TopicRule]:
    """The rules the ``sparkplug_b`` preset adds (in-memory state and no rebirth publisher unless
    handed the daemon's: ``iot.service`` builds them with the registry database and the host).
    ``seqs``: the ``seq`` gap tracker, only where this process sees every node's whole stream."""
    state, rebirths = state or MemoryState(), rebirths or NoRebirths()
    return [SparkplugRule(t, state, rebirths, seqs) for t in sorted(sp.INGESTED)]


SPARKPLUG_RULE_FACTORY = sparkplug_rules

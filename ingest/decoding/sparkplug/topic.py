"""Sparkplug B topics and the ids made from them (pure).

``spBv1.0/{group}/{type}/{edge_node}[/{device}]``, type one of :class:`MessageType`. The edge node
is the gateway its devices publish through. Ids within the contract's device-id allow-list
(``[A-Za-z0-9_.:-]``, 1-64): the node is ``{group}:{edge_node}``, a device ``{group}:{edge_node}:{device}``.
``:`` only ever separates, so each part must be 1 or more of ``[A-Za-z0-9_.-]`` (a Sparkplug id
outside that, or a whole id over 64 characters, is BAD_TOPIC): two topics never share an id.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.model import Reason, Rejected
from ingest.decoding.topics import MAX_DEVICE_ID

NAMESPACE = "spBv1.0"
PREFIX = NAMESPACE + "/"
_PART_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")


class MessageType(StrEnum):
    NBIRTH = "NBIRTH"
    NDATA = "NDATA"
    NDEATH = "NDEATH"
    DBIRTH = "DBIRTH"
    DDATA = "DDATA"
    DDEATH = "DDEATH"
    NCMD = "NCMD"
    DCMD = "DCMD"


NODE_TYPES = frozenset({MessageType.NBIRTH, MessageType.NDATA, MessageType.NDEATH, MessageType.NCMD})
INGESTED = frozenset(MessageType) - {MessageType.NCMD, MessageType.DCMD}
"""What the host application reads; commands are its own (and other hosts') output."""


@dataclass(frozen=True, slots=True)
class SparkplugTopic:
    group: str
    type: MessageType
    edge: str
    device: str | None  # None: a node message

    @property
    def node_id(self) -> str:
        return f"{self.group}:{self.edge}"

    @property
    def device_id(self) -> str:
        """The id its readings and status are filed under: the node's, or the device's."""
        return self.node_id if self.device is None else f"{self.node_id}:{self.device}"


def node_id(group: str, edge: str) -> str:
    return f"{group}:{edge}"


def command_topic(group: str, edge: str) -> str:
    return f"{PREFIX}{group}/{MessageType.NCMD}/{edge}"


def _part_ok(part: str) -> bool:
    return len(part) > 0 and _PART_CHARS.issuperset(part)


def parse(topic: str) -> SparkplugTopic | None:
    """The Sparkplug topic ``topic`` is, None when it is not under ``spBv1.0/`` (or is the
    ``STATE`` of a host application); Rejected(BAD_TOPIC) when it is but breaks the rules."""
    if type(topic) is not str or not topic.startswith(PREFIX):
        return None
    parts = topic[len(PREFIX) :].split("/")
    if parts[0] == "STATE":
        return None
    if len(parts) not in (3, 4):
        raise Rejected(Reason.BAD_TOPIC, "Sparkplug topic must be spBv1.0/<group>/<type>/<edge_node>[/<device>]")
    try:
        mtype = MessageType(parts[1])
    except ValueError:
        raise Rejected(Reason.UNKNOWN_KIND, f"unknown Sparkplug message type {parts[1][:32]!r}") from None
    if (len(parts) == 3) != (mtype in NODE_TYPES):
        raise Rejected(Reason.BAD_TOPIC, f"a {mtype} topic {'has no' if mtype in NODE_TYPES else 'needs a'} device")
    if not all(_part_ok(p) for i, p in enumerate(parts) if i != 1):
        raise Rejected(Reason.BAD_TOPIC, "Sparkplug group, edge node and device ids must be 1+ of [A-Za-z0-9_.-]")
    found = SparkplugTopic(parts[0], mtype, parts[2], parts[3] if len(parts) == 4 else None)
    if len(found.device_id) > MAX_DEVICE_ID:
        raise Rejected(Reason.BAD_TOPIC, f"Sparkplug id {found.device_id[:40]!r}… longer than {MAX_DEVICE_ID}")
    return found

"""A Sparkplug B edge node's broker namespace, as a gateway prefix and as the exported ACL lines.

A Sparkplug gateway (``iot gateways add NAME --sparkplug GROUP/EDGE``) is stored with the prefix
``spBv1.0/{group}/+/{edge}/#``: the filter of every topic of that node, so prefix overlap checks
keep two credentials off one node. The exported ACL is narrower than the prefix: the node writes
only ``N{BIRTH,DATA,DEATH}/{edge}`` and ``D{BIRTH,DATA,DEATH}/{edge}/+`` of its group, and reads its
commands (``NCMD/{edge}``, ``DCMD/{edge}/+``) and the host applications' ``spBv1.0/STATE/+``.
The ingest account (the host application) reads ``spBv1.0/#`` and writes ``NCMD`` and ``STATE``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

NAMESPACE = "spBv1.0"
_PART = re.compile(r"[A-Za-z0-9_.-]{1,62}")  # the parts of an id {group}:{edge} (ingest's Sparkplug topics)
NODE_RULE = "GROUP/EDGE, each 1+ of [A-Za-z0-9_.-]"

HOST_READS = (f"{NAMESPACE}/#",)
HOST_WRITES = (f"{NAMESPACE}/+/NCMD/+", f"{NAMESPACE}/STATE/+")


@dataclass(frozen=True, slots=True)
class EdgeNode:
    group: str
    edge: str

    @property
    def prefix(self) -> str:
        """The gateway prefix: every topic of the node's namespace."""
        return f"{NAMESPACE}/{self.group}/+/{self.edge}/#"

    def writes(self) -> list[str]:
        g, e = self.group, self.edge
        return [
            *(f"{NAMESPACE}/{g}/{t}/{e}" for t in ("NBIRTH", "NDATA", "NDEATH")),
            *(f"{NAMESPACE}/{g}/{t}/{e}/+" for t in ("DBIRTH", "DDATA", "DDEATH")),
        ]

    def reads(self) -> list[str]:
        g, e = self.group, self.edge
        return [f"{NAMESPACE}/{g}/NCMD/{e}", f"{NAMESPACE}/{g}/DCMD/{e}/+", f"{NAMESPACE}/STATE/+"]


def parse_node(text: str) -> EdgeNode:
    """``GROUP/EDGE`` as an :class:`EdgeNode`; ValueError (one line) when it is not one."""
    parts = text.split("/") if isinstance(text, str) else []
    if len(parts) != 2 or not all(_PART.fullmatch(p) for p in parts) or parts[0] == "STATE":
        raise ValueError(f"invalid Sparkplug edge node {text!r}: {NODE_RULE} (group not STATE)")
    return EdgeNode(parts[0], parts[1])


def node_of(prefix: str) -> EdgeNode | None:
    """The edge node whose namespace ``prefix`` is (:attr:`EdgeNode.prefix`), else None."""
    levels = prefix.split("/")
    if len(levels) != 5 or levels[0] != NAMESPACE or levels[2] != "+" or levels[4] != "#":
        return None
    try:
        return parse_node(f"{levels[1]}/{levels[3]}")
    except ValueError:
        return None

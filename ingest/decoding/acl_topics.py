"""What the broker's ACL must allow for the topic rules in use: each direct device's own topics.

A mapping rule (``ingest.decoding.mappings``) has an MQTT ``filter`` with ``+`` at its device level
and a ``gateway`` (None: each device publishes for itself). For a direct rule, the device level is
found by asking the rule itself (``device_of`` on a probe topic), so the export can give each
device exactly its own topics (``{device}`` standing for its id); a gateway's rule needs nothing
here: the gateway's credential writes under its registered prefix."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ingest.decoding.topics import ContractTopics

PROBE = "acl-probe-device"
_OTHER = "acl-probe-level"


class MappedRule(Protocol):
    """What this module reads of a mapping rule."""

    @property
    def filter(self) -> str: ...
    @property
    def gateway(self) -> str | None: ...
    def device_of(self, topic: str) -> str | None: ...


def device_template(rule: MappedRule) -> str:
    """``rule.filter`` with its device level as ``{device}``; ValueError when no ``+`` level is it."""
    levels = rule.filter.split("/")
    for i, level in enumerate(levels):
        if level != "+":
            continue
        probe = [PROBE if j == i else (_OTHER if lv in ("+", "#") else lv) for j, lv in enumerate(levels)]
        if rule.device_of("/".join(probe)) == PROBE:
            return "/".join("{device}" if j == i else lv for j, lv in enumerate(levels))
    raise ValueError(f"topic filter {rule.filter!r}: no + level names the device")


def device_topics(rules: Sequence[object]) -> list[str]:
    """The topic filters a direct device may write, ``{device}`` standing for its id, for ``rules``
    (the built-in contract: ``{root}/{device}/#``; gateway rules: none)."""
    out: list[str] = []
    for rule in rules:
        if isinstance(rule, ContractTopics):
            out.append(f"{rule.root}/{{device}}/#")
        elif getattr(rule, "gateway", None) is None and isinstance(getattr(rule, "filter", None), str):
            out.append(device_template(rule))  # type: ignore[arg-type]
    return list(dict.fromkeys(out))

"""/healthz: subscribed, every store taking writes, no recurring step failing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ingest.intake import Intake
from ingest.mqtt.acks import AckTracker
from ingest.steps import Steps


class Reports(Protocol):
    """A writer, as health reads it."""

    def health(self) -> dict[str, Any]: ...


class Health:
    """Built from the parts it reads; ``check`` is what the metrics endpoint calls."""

    def __init__(self, intake: Intake, acks: AckTracker, writers: Mapping[str, Reports], steps: Steps) -> None:
        self.intake = intake
        self.acks = acks
        self.writers = writers
        self.steps = steps

    def check(self) -> tuple[bool, dict[str, Any]]:
        """Healthy: subscribed to the broker, every store taking writes (not spooling) and no
        daemon step failing. ``reasons`` says in one line each what is wrong."""
        subscribed = self.intake.subscribed.is_set()
        stores = {d: w.health() for d, w in self.writers.items()}
        steps = dict(self.steps.problems)
        reasons = [] if subscribed else ["broker: not subscribed (reconnecting)"]
        if (problem := self.intake.problem) is not None:  # operator action needed, named
            reasons.append(f"broker: {problem.message}")
        reasons += [f"{d}: {s['reason']}" for d, s in stores.items() if s["reason"]]
        reasons += [f"{name}: {p.describe()}" for name, p in steps.items()]
        return not reasons, {
            "broker": "subscribed" if subscribed else "disconnected",
            "unacked": self.acks.outstanding,
            "stores": stores,
            "steps": {name: p.describe() for name, p in steps.items()},
            "reasons": reasons,
        }

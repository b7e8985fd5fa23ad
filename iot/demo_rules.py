"""The alert rules `iot demo` installs so a short run shows alerts opening and resolving."""

from __future__ import annotations

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from registry.alerts.rules import Rule, RuleKind
from registry.alerts.store import add_rule
from registry.auth import BOOTSTRAP_ACTOR
from registry.models import AlertRule

DEMO_RULES = (
    Rule(
        0,
        "demo-vibration-high",
        RuleKind.THRESHOLD,
        "major",
        measurement="sensor_readings",
        field="rms_velocity",
        op=">",
        threshold=4.5,
        hysteresis=0.5,
    ),
    Rule(0, "demo-device-warnings", RuleKind.EVENT, "minor", level="warning", clear_after_s=10),
    Rule(
        0,
        "demo-voltage-jump",
        RuleKind.RATE,
        "warning",
        measurement="sensor_readings",
        field="voltage",
        op=">",
        threshold=20.0,
    ),
)


def install_demo_rules(engine: Engine) -> int:
    """Add the demo rules that are missing; returns how many were added."""
    added = 0
    with Session(engine) as session, session.begin():
        existing = set(session.scalars(select(AlertRule.name)))
        for rule in DEMO_RULES:
            if rule.name not in existing:
                add_rule(session, BOOTSTRAP_ACTOR, rule)
                added += 1
    return added

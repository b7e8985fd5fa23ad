"""``iot alerts`` end to end through the real entry point, over SQLite and PostgreSQL:
every command, JSON output, exit codes and role checks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.alerts import store
from registry.alerts.engine import Transition
from registry.alerts.rules import OPEN
from registry.auth import BOOTSTRAP_ACTOR, create_key
from registry.db import make_engine
from registry.models import AuditEntry
from tests.cli_runner import Result, run_iot
from tests.keyed_cli import migrated_registry_url

Iot = Callable[..., Result]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return migrated_registry_url(request, tmp_path)


@pytest.fixture
def keys(registry_url: str) -> dict[str, str]:
    engine = make_engine(registry_url)
    with Session(engine) as s, s.begin():
        out = {role: create_key(s, BOOTSTRAP_ACTOR, role, role) for role in ("admin", "operator", "viewer")}
        out["paris"] = create_key(s, BOOTSTRAP_ACTOR, "paris-op", "operator", ["paris"])
    engine.dispose()
    return out


@pytest.fixture
def iot(
    registry_url: str,
    keys: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> Iterator[Iot]:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("IOT_REGISTRY_URL", registry_url)
    monkeypatch.setenv("COLUMNS", "250")

    def run(*args: str, as_: str = "admin") -> Result:
        monkeypatch.setenv("IOT_API_KEY", keys[as_])
        return run_iot(monkeypatch, capsys, "alerts", *args)

    yield run


def seed(url: str, *spec: tuple[str, str, str | None, str, float]) -> list[int]:
    """Open alerts: (rule name, device, site, severity, hours ago) → their ids."""
    engine = make_engine(url)
    now = datetime.now(UTC).timestamp()
    with Session(engine) as s, s.begin():
        rules = {r.name: r.id for r in store.list_rules(s, BOOTSTRAP_ACTOR)}
        store.apply_transitions(
            s,
            [
                Transition(OPEN, rules[name], dev, now - ago * 3600, 85.0, f"{name} on {dev}", sev, site)
                for name, dev, site, sev, ago in spec
            ],
        )
    with Session(engine) as s:
        ids = [a.id for a in store.list_alerts(s, BOOTSTRAP_ACTOR, limit=1000)]
    engine.dispose()
    return sorted(ids)


def test_rules_add_list_enable_disable_remove(iot: Iot) -> None:
    r = iot(
        "rules",
        "add",
        "hot",
        "--kind",
        "threshold",
        "--field",
        "temperature",
        "--op",
        ">",
        "--value",
        "80",
        "--for",
        "60s",
        "--hysteresis",
        "2",
        "--severity",
        "major",
        "--json",
    )
    assert r.code == 0, r.err
    assert r.json()["definition"] == "temperature > 80 for 60s"
    assert (
        iot(
            "rules",
            "add",
            "jump",
            "--kind",
            "rate",
            "--field",
            "pressure",
            "--op",
            ">",
            "--value",
            "5",
            "--severity",
            "minor",
            "--scope",
            "type",
            "--scope-value",
            "pump",
        ).code
        == 0
    )
    assert (
        iot(
            "rules",
            "add",
            "silent",
            "--kind",
            "nodata",
            "--for",
            "5m",
            "--severity",
            "critical",
            "--scope",
            "site",
            "--scope-value",
            "paris",
        ).code
        == 0
    )
    assert iot("rules", "add", "errs", "--kind", "event", "--severity", "warning").code == 0
    rules = iot("rules", "list", "--json", as_="viewer").json()
    assert isinstance(rules, list)
    assert {r["name"]: r["definition"] for r in rules} == {
        "errs": "event level >= error",
        "hot": "temperature > 80 for 60s",
        "jump": "|dpressure/dt| > 5/s",
        "silent": "no data for 300s",
    }
    assert "temperature > 80" in iot("rules", "list", as_="viewer").out

    bad = iot("rules", "add", "x", "--kind", "threshold", "--op", ">", "--value", "1", "--severity", "major")
    assert (bad.code, bad.err.strip()) == (2, "error: a threshold rule needs --field")
    dup = iot("rules", "add", "hot", "--kind", "nodata", "--for", "1m", "--severity", "info")
    assert dup.code == 2 and "already exists" in dup.err
    assert iot("rules", "add", "y", "--kind", "nodata", "--for", "soon", "--severity", "info").code == 2
    denied = iot("rules", "add", "z", "--kind", "nodata", "--for", "1m", "--severity", "info", as_="operator")
    assert denied.code == 3
    assert denied.err.strip() == ("error: permission denied: role operator may not manage alert rules (needs admin)")

    assert iot("rules", "disable", "hot").code == 0
    assert iot("rules", "enable", "hot").code == 0
    assert iot("rules", "disable", "nope").code == 1
    assert iot("rules", "remove", "jump").code == 0
    names = [r["name"] for r in iot("rules", "list", "--json").json()]
    assert names == ["errs", "hot", "silent"]


def test_alert_commands(iot: Iot, registry_url: str) -> None:
    for name in ("hot", "cold"):
        assert (
            iot(
                "rules",
                "add",
                name,
                "--kind",
                "threshold",
                "--field",
                "t",
                "--op",
                ">",
                "--value",
                "1",
                "--severity",
                "major",
            ).code
            == 0
        )
    a1, a2, a3, a4 = seed(
        registry_url,
        ("hot", "d1", "paris", "major", 1),
        ("hot", "d2", "lyon", "critical", 2),
        ("cold", "d1", "paris", "minor", 3),
        ("cold", "d9", "lyon", "info", 48),
    )

    listed = iot("list", "--json", as_="viewer")
    assert listed.code == 0
    assert [a["id"] for a in listed.json()] == [a1, a2, a3, a4]
    filtered = iot("list", "--json", "--severity", "critical", "--status", "open")
    assert [a["device_id"] for a in filtered.json()] == ["d2"]
    assert [a["id"] for a in iot("list", "--json", "--device", "d1").json()] == [a1, a3]
    assert [a["id"] for a in iot("list", "--json", "--site", "lyon", "--since", "24h").json()] == [a2]
    assert len(iot("list", "--json", "--limit", "1").json()) == 1
    table = iot("list")
    assert table.code == 0 and "d9" in table.out and "critical" in table.out
    assert iot("list", "--status", "gone").code == 2
    assert iot("list", "--severity", "huge").code == 2
    assert iot("list", "--since", "yesterday").code == 2
    assert "no alerts match" in iot("list", "--device", "nobody").out
    paris = iot("list", "--json", as_="paris").json()
    assert {a["site"] for a in paris} == {"paris"}

    viewer_ack = iot("ack", str(a1), as_="viewer")
    assert viewer_ack.code == 3
    assert viewer_ack.err.strip() == (
        "error: permission denied: role viewer may not acknowledge alerts (needs operator)"
    )
    assert viewer_ack.out == ""
    ack = iot("ack", str(a1), "--note", "on it", as_="operator")
    assert (ack.code, ack.out.strip()) == (0, f"alert {a1} acknowledged by operator")
    again = iot("ack", str(a1), as_="operator")
    assert again.code == 4 and "only open alerts can be acknowledged" in again.err
    assert iot("ack", "999999", as_="operator").code == 1
    assert iot("ack", "abc", as_="operator").code == 2
    assert iot("resolve", str(a2), as_="paris").code == 1  # lyon is not visible to paris-op
    assert iot("resolve", str(a1), "--note", "fixed", as_="operator").code == 0
    twice = iot("resolve", str(a1), as_="operator")
    assert twice.code == 4 and f"alert {a1} is already resolved" in twice.err
    assert iot("resolve", str(a3), as_="paris").code == 0

    shown = iot("show", str(a1), "--json", as_="viewer").json()
    assert isinstance(shown, dict)
    assert (shown["status"], shown["acknowledged_by"], shown["resolved_by"]) == ("resolved", "operator", "operator")
    assert [(e["action"], e["actor"], e["note"]) for e in shown["timeline"]] == [
        ("opened", "system", "hot on d1"),
        ("acknowledged", "operator", "on it"),
        ("resolved", "operator", "fixed"),
    ]
    text = iot("show", str(a1))
    assert text.code == 0 and "acknowledged" in text.out and "on it" in text.out
    assert iot("show", "424242").code == 1

    st = iot("stats", "--since", "7d", "--json", as_="viewer").json()
    assert isinstance(st, dict)
    assert st["total"] == 4
    assert st["by_status"] == {"open": 2, "resolved": 2}
    assert st["by_rule"] == {"hot": 2, "cold": 2}
    assert st["mean_time_to_resolve_s"] > 3600
    assert iot("stats", "--since", "30h", "--json").json()["total"] == 3
    human = iot("stats")
    assert human.code == 0 and "mean time to acknowledge" in human.out

    engine = make_engine(registry_url)
    with Session(engine) as s:
        actions = [
            (e.actor, e.action)
            for e in s.scalars(select(AuditEntry).where(AuditEntry.action.like("alert%")).order_by(AuditEntry.id))
        ]
    engine.dispose()
    assert actions == [
        ("admin", "alert_rule.add"),
        ("admin", "alert_rule.add"),
        ("operator", "alert.ack"),
        ("operator", "alert.resolve"),
        ("paris-op", "alert.resolve"),
    ]


def test_unknown_key_and_unmigrated_database(
    iot: Iot, keys: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    keys["bogus"] = "iotk_not-a-real-key"
    r = iot("list", as_="bogus")
    assert r.code == 3 and "unknown API key" in r.err
    monkeypatch.setenv("IOT_REGISTRY_URL", f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    r = iot("list")
    assert r.code == 2 and "iot registry migrate" in r.err
    assert "Traceback" not in r.err

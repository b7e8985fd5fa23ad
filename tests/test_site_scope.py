"""A site-limited key is held to its site in every admin action (issue 7, item 4): each attack a
key ``adminA --site A`` tried is reproduced through the real `iot` entry point, on SQLite and
PostgreSQL, and must be refused (exit 3) with nothing changed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry import credentials
from registry.db import make_engine
from registry.models import Alert, AlertRule, ApiKey, Device
from tests.cli_runner import Result
from tests.keyed_cli import Iot, add_key, denied, make_iot, registry_url_for


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return registry_url_for(request, tmp_path)


@pytest.fixture
def iot(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, registry_url: str) -> Iot:
    return make_iot(monkeypatch, capsys, tmp_path, registry_url)


@pytest.fixture
def keys(iot: Iot, tmp_path: Path) -> dict[str, str]:
    """A global admin ``root``, a site-A admin ``adminA``, a site-B operator, and two fleets:
    ``fleetA-*`` at site A and ``fleetB-*`` at site B (secrets of B kept by the test)."""
    assert iot("registry", "migrate").code == 0
    root = add_key(iot, None, "--name", "root", "--role", "admin")
    admin_a = add_key(iot, root, "--name", "adminA", "--role", "admin", "--site", "A")
    op_b = add_key(iot, root, "--name", "opB", "--role", "operator", "--site", "B")
    for fleet, site in (("fleetA", "A"), ("fleetB", "B")):
        r = iot(
            "sim", "provision", "-n", "2", "--prefix", fleet, "--site", site,
            "--password-file", str(tmp_path / f"{fleet}.json"), key=root,
        )  # fmt: skip
        assert r.code == 0, r.err
    return {"root": root, "adminA": admin_a, "opB": op_b}


@contextmanager
def _session(registry_url: str) -> Iterator[Session]:
    engine = make_engine(registry_url)
    try:
        with Session(engine) as s:
            yield s
    finally:
        engine.dispose()


def test_a_site_key_cannot_mint_a_wideradd_key(iot: Iot, keys: dict[str, str], registry_url: str) -> None:
    a = keys["adminA"]
    denied(iot("registry", "keys", "add", "--name", "escape", "--role", "admin", key=a))  # no site: every site
    denied(iot("registry", "keys", "add", "--name", "escape", "--role", "viewer", "--site", "B", key=a))
    denied(iot("registry", "keys", "add", "--name", "escape", "--role", "admin", "--site", "A", "--site", "B", key=a))
    viewer_a = add_key(iot, a, "--name", "viewerA", "--role", "viewer", "--site", "A")  # within scope: fine
    denied(iot("registry", "keys", "add", "--name", "up", "--role", "operator", "--site", "A", key=viewer_a))
    with _session(registry_url) as s:
        assert sorted(s.scalars(select(ApiKey.name))) == ["adminA", "opB", "root", "viewerA"]


def test_a_site_key_cannot_disable_or_list_wider_keys(iot: Iot, keys: dict[str, str]) -> None:
    a = keys["adminA"]
    denied(iot("registry", "keys", "disable", "root", key=a))
    denied(iot("registry", "keys", "disable", "opB", key=a))
    assert iot("devices", "list", key=keys["root"]).code == 0  # root still works
    listed = json.loads(iot("registry", "keys", "list", "--json", key=a).out)
    assert [k["name"] for k in listed] == ["adminA"]
    everything = json.loads(iot("registry", "keys", "list", "--json", key=keys["root"]).out)
    assert [k["name"] for k in everything] == ["adminA", "opB", "root"]


def test_a_site_key_cannot_rotate_or_print_other_sites_secrets(
    iot: Iot, keys: dict[str, str], registry_url: str, tmp_path: Path
) -> None:
    a = keys["adminA"]
    with _session(registry_url) as s:
        before = {d.id: d.secret_hash for d in s.scalars(select(Device).where(Device.site == "B"))}
    r = iot("sim", "provision", "-n", "2", "--prefix", "fleetB", "--site", "A", "--show-secrets", key=a)
    denied(r)
    assert "fleetB-0000 " not in r.out
    denied(iot("sim", "provision", "-n", "1", "--prefix", "fresh", key=a))  # no site: outside its scope
    denied(iot("devices", "add", "nosite", key=a))
    denied(iot("devices", "add", "atB", "--site", "B", key=a))
    r = iot("devices", "disable", "fleetB-0000", key=a)  # other sites' devices are invisible
    assert (r.code, r.err) == (1, "error: no device fleetB-0000\n")
    with _session(registry_url) as s:
        after = {d.id: d.secret_hash for d in s.scalars(select(Device).where(Device.site == "B"))}
        assert after == before and len(after) == 2
        assert s.get(Device, "nosite") is None and s.get(Device, "atB") is None
    secrets_b = json.loads((tmp_path / "fleetB.json").read_text())
    assert credentials.verify(secrets_b["fleetB-0000"], after["fleetB-0000"] or "")
    # within its site the key works: rotating site A's own fleet
    assert iot("sim", "provision", "-n", "2", "--prefix", "fleetA", "--site", "A", key=a).code == 0


def test_a_site_key_cannot_export_every_sites_hashes(iot: Iot, keys: dict[str, str], tmp_path: Path) -> None:
    pw = tmp_path / "ingest.pw"
    pw.write_text("ingest-secret\n")
    out = tmp_path / "broker"
    r = iot("registry", "export-mosquitto", "--dir", str(out), "--ingest-password-file", str(pw), key=keys["adminA"])
    denied(r)
    assert not (out / "passwd").exists()
    r = iot("registry", "export-mosquitto", "--dir", str(out), "--ingest-password-file", str(pw), key=keys["root"])
    assert r.code == 0, r.err
    assert "fleetB-0000:" in (out / "passwd").read_text()


def _open_alert(registry_url: str, rule: str, device: str, site: str) -> int:
    now = datetime.now(UTC)
    with _session(registry_url) as s:
        rule_id = s.scalars(select(AlertRule.id).where(AlertRule.name == rule)).one()
        row = Alert(
            rule_id=rule_id, device_id=device, site=site, severity="major", status="open",
            message="hot", count=1, opened_at=now, last_seen_at=now,
        )  # fmt: skip
        s.add(row)
        s.commit()
        return row.id


def _rule(iot: Iot, key: str, name: str, *scope: str) -> Result:
    return iot(
        "alerts", "rules", "add", name, "--kind", "threshold", "--severity", "major",
        "--field", "temperature", "--op", ">", "--value", "80", *scope, key=key,
    )  # fmt: skip


def test_a_site_key_cannot_change_rules_reaching_other_sites(iot: Iot, keys: dict[str, str], registry_url: str) -> None:
    a, root = keys["adminA"], keys["root"]
    assert _rule(iot, root, "hot-all").code == 0
    assert _rule(iot, root, "hot-b", "--scope", "site", "--scope-value", "B").code == 0
    alert_b = _open_alert(registry_url, "hot-all", "fleetB-0000", "B")
    _open_alert(registry_url, "hot-b", "fleetB-0001", "B")

    denied(iot("alerts", "rules", "disable", "hot-all", key=a))
    denied(iot("alerts", "rules", "disable", "hot-b", key=a))
    denied(iot("alerts", "rules", "remove", "hot-b", "--purge", key=a))
    denied(_rule(iot, a, "mine-all"))  # scope all reaches site B
    denied(_rule(iot, a, "mine-b", "--scope", "site", "--scope-value", "B"))
    denied(_rule(iot, a, "mine-dev", "--scope", "device", "--scope-value", "fleetB-0000"))
    denied(_rule(iot, a, "mine-type", "--scope", "type", "--scope-value", "thermostat"))
    with _session(registry_url) as s:
        assert s.get(Alert, alert_b).status == "open"  # type: ignore[union-attr]
        assert all(r.enabled for r in s.scalars(select(AlertRule)))
        assert sorted(s.scalars(select(AlertRule.name))) == ["hot-all", "hot-b"]

    # its own site: allowed, including a device rule for a device at A
    assert _rule(iot, a, "mine-a", "--scope", "site", "--scope-value", "A").code == 0
    assert _rule(iot, a, "mine-dev-a", "--scope", "device", "--scope-value", "fleetA-0000").code == 0
    assert iot("alerts", "rules", "disable", "mine-a", key=a).code == 0
    # a rule for site A whose history has an alert at B (the device moved) is out of reach too
    _open_alert(registry_url, "mine-dev-a", "fleetB-0001", "B")
    denied(iot("alerts", "rules", "disable", "mine-dev-a", key=a))


def test_a_site_operator_cannot_act_outside_its_site(iot: Iot, keys: dict[str, str]) -> None:
    b = keys["opB"]
    denied(iot("devices", "add", "x", "--site", "B", key=b))  # operators add nothing
    shown = json.loads(iot("devices", "list", "--json", key=b).out)
    assert {d["site"] for d in shown} == {"B"}

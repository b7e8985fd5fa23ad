"""`iot devices update` (type, site, labels; audited, validated, site-scoped) and `iot devices show`
listing a device's unresolved alerts — issue 20, on SQLite and PostgreSQL through the real entry point."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.db import make_engine
from registry.models import Alert, AlertRule, Device
from tests.cli_runner import Result
from tests.keyed_cli import Iot, add_key, denied, make_iot, registry_url_for


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return registry_url_for(request, tmp_path)


@pytest.fixture
def iot(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, registry_url: str) -> Iot:
    return make_iot(monkeypatch, capsys, tmp_path, registry_url)


@pytest.fixture
def keys(iot: Iot) -> dict[str, str]:
    """A global admin, a site-A admin, a site-A viewer; devices ``a1`` (site A) and ``b1`` (site B)."""
    assert iot("registry", "migrate").code == 0
    root = add_key(iot, None, "--name", "root", "--role", "admin")
    keys = {
        "root": root,
        "adminA": add_key(iot, root, "--name", "adminA", "--role", "admin", "--site", "A"),
        "viewerA": add_key(iot, root, "--name", "viewerA", "--role", "viewer", "--site", "A"),
    }
    for device, site in (("a1", "A"), ("b1", "B")):
        r = iot("devices", "add", device, "--type", "thermostat", "--site", site, "--label", "floor=1", key=root)
        assert r.code == 0, r.err
    return keys


def _device(registry_url: str, device_id: str) -> Device:
    engine = make_engine(registry_url)
    try:
        with Session(engine) as s:
            d = s.get(Device, device_id)
            assert d is not None
            s.expunge(d)
            return d
    finally:
        engine.dispose()


def _json(r: Result) -> Any:
    assert r.code == 0, r.err
    return json.loads(r.out)


def test_update_changes_type_site_and_labels_and_is_audited(iot: Iot, keys: dict[str, str], registry_url: str) -> None:
    r = iot(
        "devices", "update", "a1", "--type", "energy", "--site", "C", "--label", "room=12",
        "--label", "floor=2", key=keys["root"],
    )  # fmt: skip
    assert r.code == 0, r.err
    assert "updated device a1" in r.out
    d = _device(registry_url, "a1")
    assert (d.type, d.site, d.labels) == ("energy", "C", {"floor": "2", "room": "12"})

    assert iot("devices", "update", "a1", "--remove-label", "floor", key=keys["root"]).code == 0
    assert _device(registry_url, "a1").labels == {"room": "12"}

    trail = _json(iot("registry", "audit", "--action", "device.update", "--json", key=keys["root"]))
    assert [e["actor"] for e in trail] == ["root", "root"]
    newest, first = trail
    assert newest["detail"] == {"labels": {"before": {"floor": "2", "room": "12"}, "after": {"room": "12"}}}
    assert first["target"] == "device:a1"
    assert first["detail"]["type"] == {"before": "thermostat", "after": "energy"}
    assert first["detail"]["site"] == {"before": "A", "after": "C"}


@pytest.mark.parametrize(
    "args, message",
    [
        (("--type", "bad type"), "invalid device type"),
        (("--site", "x/y"), "invalid site"),
        (("--label", "bad key=v"), "invalid label key"),
        (("--label", 'k=say "hi"'), "invalid value for label"),
        (("--label", "novalue"), "invalid label"),
        (("--remove-label", "nosuch"), "has no label 'nosuch'"),
        ((), "nothing to update"),
    ],
)
def test_update_refuses_invalid_input_in_one_line_and_changes_nothing(
    iot: Iot, keys: dict[str, str], registry_url: str, args: tuple[str, ...], message: str
) -> None:
    r = iot("devices", "update", "a1", *args, key=keys["root"])
    assert r.code == 2, (r.code, r.out, r.err)
    assert message in r.err and len(r.err.strip().splitlines()) == 1
    d = _device(registry_url, "a1")
    assert (d.type, d.site, d.labels) == ("thermostat", "A", {"floor": "1"})


def test_a_site_key_cannot_move_devices_across_sites(iot: Iot, keys: dict[str, str], registry_url: str) -> None:
    denied(iot("devices", "update", "a1", "--site", "B", key=keys["adminA"]))  # out of its site
    assert _device(registry_url, "a1").site == "A"
    r = iot("devices", "update", "b1", "--site", "A", key=keys["adminA"])  # into its site from another
    assert r.code == 1 and r.err.strip() == "error: no device b1", r.err
    assert _device(registry_url, "b1").site == "B"
    denied(iot("devices", "update", "a1", "--type", "energy", key=keys["viewerA"]))  # role
    assert _device(registry_url, "a1").type == "thermostat"
    # within its site it may
    assert iot("devices", "update", "a1", "--type", "energy", key=keys["adminA"]).code == 0
    assert _device(registry_url, "a1").type == "energy"


def _alert(registry_url: str, rule: str, device: str, status: str, message: str, age_s: int) -> int:
    at = datetime.now(UTC) - timedelta(seconds=age_s)
    engine = make_engine(registry_url)
    try:
        with Session(engine) as s:
            rule_id = s.scalars(select(AlertRule.id).where(AlertRule.name == rule)).one()
            row = Alert(
                rule_id=rule_id, device_id=device, site="A", severity="major", status=status,
                message=message, count=1, opened_at=at, last_seen_at=at,
            )  # fmt: skip
            s.add(row)
            s.commit()
            return row.id
    finally:
        engine.dispose()


def test_show_lists_the_devices_unresolved_alerts(iot: Iot, keys: dict[str, str], registry_url: str) -> None:
    for rule, op in (("hot", ">"), ("cold", "<"), ("gone", ">=")):  # one unresolved alert per rule and device
        r = iot(
            "alerts", "rules", "add", rule, "--kind", "threshold", "--severity", "major",
            "--field", "temperature", "--op", op, "--value", "80", key=keys["root"],
        )  # fmt: skip
        assert r.code == 0, r.err
    older = _alert(registry_url, "cold", "a1", "acknowledged", "older one", 120)
    newer = _alert(registry_url, "hot", "a1", "open", "newer one", 10)
    _alert(registry_url, "gone", "a1", "resolved", "long gone", 60)
    _alert(registry_url, "hot", "a2", "open", "someone else", 5)

    data = _json(iot("devices", "show", "a1", "--json", key=keys["viewerA"]))
    assert [(a["id"], a["status"], a["message"]) for a in data["open_alerts"]] == [
        (newer, "open", "newer one"),
        (older, "acknowledged", "older one"),
    ]
    text = iot("devices", "show", "a1", key=keys["viewerA"])
    assert text.code == 0, text.err
    assert "open alerts       2" in text.out
    assert f"#{newer}" in text.out and "newer one" in text.out and "long gone" not in text.out

    quiet = iot("devices", "show", "b1", key=keys["root"])
    assert "open alerts       (none)" in quiet.out

"""Every `iot devices`, `iot registry` and `iot sim provision` command, on SQLite and PostgreSQL,
run through the real entry point (so exit codes and one-line errors are what users get)."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from registry import credentials
from registry.db import make_engine
from registry.models import Device
from tests.cli_runner import Result
from tests.keyed_cli import make_iot
from tests.servers import free_port

Iot = Callable[..., Result]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'data' / 'registry.sqlite3'}"


@pytest.fixture
def iot(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    registry_url: str,
) -> Iot:
    """Run `iot ARGS...` in-process as the key ``key`` (None: no IOT_API_KEY)."""
    return make_iot(monkeypatch, capsys, tmp_path, registry_url)


@pytest.fixture
def migrated(iot: Iot) -> Iot:
    assert iot("registry", "migrate").code == 0
    return iot


def _json(r: Result) -> Any:
    assert r.code == 0, r.err
    return json.loads(r.out)


def _ids(r: Result) -> list[str]:
    return [d["id"] for d in _json(r)]


def test_unmigrated_schema_is_refused_then_migrate(iot: Iot) -> None:
    r = iot("devices", "list")
    assert r.code == 2
    assert r.err.strip().startswith("error: registry schema is not migrated (at empty")
    assert "iot registry migrate" in r.err
    assert "Traceback" not in r.err
    r = iot("registry", "status")
    assert r.code == 1 and "run `iot registry migrate`" in r.err

    r = iot("registry", "migrate")
    assert r.code == 0 and "(head)" in r.out
    status = _json(iot("registry", "status", "--json"))
    assert isinstance(status, dict) and status["migrated"] is True
    assert status["current"] == status["head"]
    r = iot("registry", "status")
    assert r.code == 0 and "up to date" in r.out


def test_device_lifecycle_and_audit(migrated: Iot, registry_url: str) -> None:
    iot = migrated
    r = iot(
        "devices",
        "add",
        "th-1",
        "--type",
        "thermostat",
        "--site",
        "north",
        "--label",
        "floor=2",
        "--label",
        "room=lab",
        "--with-secret",
    )
    assert r.code == 0, r.err
    secret = r.out.strip().splitlines()[-1].rsplit(" ", 1)[-1]
    assert iot("devices", "add", "en-1", "--type", "energy", "--site", "south").code == 0

    r = iot("devices", "add", "th-1", "--type", "thermostat")
    assert (r.code, r.err.strip()) == (2, "error: device th-1 already exists")
    r = iot("devices", "add", "bad/id")
    assert r.code == 2 and "invalid device id" in r.err
    r = iot("devices", "add", "x1", "--label", "nonsense")
    assert r.code == 2 and "invalid label" in r.err

    engine = make_engine(registry_url)
    with Session(engine) as s:
        dev = s.get(Device, "th-1")
        assert dev is not None and dev.secret_hash is not None
        assert credentials.verify(secret, dev.secret_hash)
        assert secret not in dev.secret_hash
    engine.dispose()

    rows = _json(iot("devices", "list", "--json"))
    assert isinstance(rows, list)
    assert [d["id"] for d in rows] == ["en-1", "th-1"]
    assert rows[1]["labels"] == {"floor": "2", "room": "lab"}
    assert rows[1]["status"] == "provisioned" and "secret_hash" not in rows[1]
    assert _ids(iot("devices", "list", "--site", "south", "--json")) == ["en-1"]
    assert _ids(iot("devices", "list", "--type", "thermostat", "--json")) == ["th-1"]
    r = iot("devices", "list")
    assert r.code == 0 and "th-1" in r.out and "en-1" in r.out
    r = iot("devices", "list", "--status", "bogus")
    assert r.code == 2 and "invalid --status" in r.err

    assert iot("devices", "disable", "th-1").out.strip() == "device th-1: disabled"
    assert _ids(iot("devices", "list", "--status", "disabled", "--json")) == ["th-1"]
    assert iot("devices", "enable", "th-1").out.strip() == "device th-1: provisioned"
    assert iot("devices", "retire", "th-1").out.strip() == "device th-1: retired"
    r = iot("devices", "enable", "th-1")
    assert (r.code, r.err.strip()) == (2, "error: device th-1 is retired: retirement is final")
    shown = _json(iot("devices", "show", "th-1", "--json"))
    assert isinstance(shown, dict)
    assert shown["status"] == "retired" and shown["has_secret"] is False
    r = iot("devices", "show", "th-1")
    assert r.code == 0 and "retired" in r.out and "floor=2" in r.out

    r = iot("devices", "show", "nope")
    assert (r.code, r.err.strip()) == (1, "error: no device nope")
    r = iot("devices", "disable", "nope")
    assert r.code == 1

    trail = _json(iot("registry", "audit", "--json"))
    assert isinstance(trail, list)
    assert [(e["actor"], e["action"], e["target"]) for e in reversed(trail)] == [
        ("local-admin", "device.add", "device:th-1"),
        ("local-admin", "device.add", "device:en-1"),
        ("local-admin", "device.disable", "device:th-1"),
        ("local-admin", "device.enable", "device:th-1"),
        ("local-admin", "device.retire", "device:th-1"),
    ]
    assert trail[0]["detail"] == {"before": "provisioned", "after": "retired"}
    assert all(e["at"].endswith("Z") for e in trail)
    assert len(_json(iot("registry", "audit", "--since", "1h", "--action", "device.add", "--json"))) == 2
    assert _json(iot("registry", "audit", "--actor", "someone-else", "--json")) == []
    r = iot("registry", "audit", "--since", "yesterday")
    assert r.code == 2 and "invalid duration" in r.err
    r = iot("registry", "audit")
    assert r.code == 0 and "device.retire" in r.out


def _add_key(iot: Iot, name: str, role: str, *extra: str, key: str | None = None) -> str:
    r = iot("registry", "keys", "add", "--name", name, "--role", role, *extra, key=key)
    assert r.code == 0, r.err
    assert "shown once" in r.err
    return r.out.strip()


def test_roles_and_keys(migrated: Iot) -> None:
    iot = migrated
    admin = _add_key(iot, "root", "admin")  # bootstrap: no key exists yet
    r = iot("devices", "list")
    assert r.code == 3 and r.err.strip() == (
        "error: permission denied: an API key is required: set IOT_API_KEY (ask an admin for one)"
    )
    r = iot("registry", "keys", "add", "--name", "x", "--role", "admin")
    assert r.code == 3  # bootstrap is over
    viewer = _add_key(iot, "vic", "viewer", key=admin)
    operator = _add_key(iot, "olga", "operator", key=admin)
    north = _add_key(iot, "nora", "viewer", "--site", "north", key=admin)
    r = iot("registry", "keys", "add", "--name", "y", "--role", "root", key=admin)
    assert r.code == 2 and "invalid --role" in r.err

    assert iot("devices", "add", "n1", "--site", "north", key=admin).code == 0
    assert iot("devices", "add", "s1", "--site", "south", key=admin).code == 0

    r = iot("devices", "disable", "n1", key=viewer)
    assert (r.code, r.err.strip()) == (3, "error: permission denied: role viewer may not disable devices (needs admin)")
    r = iot("devices", "add", "o1", key=operator)
    assert (r.code, r.err.strip()) == (3, "error: permission denied: role operator may not add devices (needs admin)")
    r = iot("sim", "provision", "--devices", "2", key=operator)
    assert r.code == 3 and "may not provision devices" in r.err
    r = iot("registry", "audit", key=viewer)
    assert r.code == 3 and "role viewer may not read the audit trail (needs operator)" in r.err
    r = iot("registry", "keys", "list", key=operator)
    assert r.code == 3
    r = iot("devices", "list", key="iotk_not-a-real-key")
    assert r.code == 3 and "unknown API key" in r.err

    assert _ids(iot("devices", "list", "--json", key=viewer)) == ["n1", "s1"]
    assert _json(iot("devices", "show", "s1", "--json", key=viewer))["id"] == "s1"
    assert _ids(iot("devices", "list", "--json", key=north)) == ["n1"]
    assert iot("devices", "show", "s1", key=north).code == 1  # other sites are invisible

    keys = _json(iot("registry", "keys", "list", "--json", key=admin))
    assert isinstance(keys, list)
    assert {k["name"]: k["role"] for k in keys} == {
        "root": "admin",
        "vic": "viewer",
        "olga": "operator",
        "nora": "viewer",
    }
    assert all(k["prefix"] and k["prefix"] not in (admin, viewer) for k in keys)
    listed = iot("registry", "keys", "list", key=admin).out
    assert "olga" in listed and not any(k in listed for k in (admin, viewer, operator, north))

    assert iot("registry", "keys", "disable", "vic", key=admin).code == 0
    r = iot("devices", "list", key=viewer)
    assert r.code == 3 and "'vic' is disabled" in r.err
    assert iot("registry", "keys", "disable", "nobody", key=admin).code == 1

    trail = _json(iot("registry", "audit", "--json", key=operator))
    assert isinstance(trail, list)
    assert ("root", "key.disable", "key:vic") in [(e["actor"], e["action"], e["target"]) for e in trail]
    assert ("local-admin", "key.add", "key:root") in [(e["actor"], e["action"], e["target"]) for e in trail]


def test_sim_provision(migrated: Iot, registry_url: str, tmp_path: Path) -> None:
    iot = migrated
    pwfile = tmp_path / "secrets" / "fleet.json"
    r = iot("sim", "provision", "--devices", "3", "--site", "lab", "--password-file", str(pwfile))
    assert r.code == 0, r.err
    assert r.out.strip() == f"provisioned 3 devices; secrets in {pwfile}"
    assert stat.S_IMODE(pwfile.stat().st_mode) == 0o600
    secrets = json.loads(pwfile.read_text())
    assert sorted(secrets) == ["sim-0000", "sim-0001", "sim-0002"]  # the ids `iot sim run --devices 3` uses
    assert not any(s in r.out for s in secrets.values())

    engine = make_engine(registry_url)
    with Session(engine) as s:
        for device_id, secret in secrets.items():
            dev = s.get(Device, device_id)
            assert dev is not None and dev.status == "provisioned" and dev.site == "lab"
            assert dev.secret_hash and credentials.verify(secret, dev.secret_hash)
    engine.dispose()

    r = iot(
        "sim",
        "provision",
        "--devices",
        "4",
        "--profile",
        "thermostat",
        "--profile",
        "energy",
        "--password-file",
        str(pwfile),
        "--show-secrets",
    )
    assert r.code == 0, r.err
    merged = json.loads(pwfile.read_text())
    assert sorted(merged) == [f"sim-000{i}" for i in range(4)]
    assert merged["sim-0003"] in r.out and merged["sim-0000"] in r.out
    assert merged["sim-0000"] != secrets["sim-0000"]  # existing devices get a rotated secret
    rows = _json(iot("devices", "list", "--json"))
    assert isinstance(rows, list)
    types = {d["id"]: d["type"] for d in rows}
    assert types["sim-0003"] == "energy" and types["sim-0000"] != "energy"

    r = iot("sim", "provision", "--devices", "1", "--profile", "toaster")
    assert r.code == 2 and "unknown profile 'toaster'" in r.err
    r = iot("sim", "provision", "--devices", "0")
    assert r.code == 2 and "at least 1" in r.err
    default = tmp_path / "data" / "sim-passwords.json"
    assert iot("sim", "provision", "--devices", "1", "--prefix", "bench").code == 0
    assert list(json.loads(default.read_text())) == ["bench-0000"]


def test_export_mosquitto(migrated: Iot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    iot = migrated
    pwfile = tmp_path / "fleet.json"
    assert iot("sim", "provision", "--devices", "4", "--password-file", str(pwfile)).code == 0
    assert iot("devices", "add", "nosecret").code == 0
    assert iot("devices", "disable", "sim-0002").code == 0
    assert iot("devices", "retire", "sim-0003").code == 0
    out = tmp_path / "broker"

    r = iot("registry", "export-mosquitto", "--dir", str(out))
    assert r.code == 2 and "IOT_BROKER_PASSWORD" in r.err

    ingest_pw = tmp_path / "ingest.pw"
    ingest_pw.write_text("ingest-secret\n")
    r = iot("registry", "export-mosquitto", "--dir", str(out), "--ingest-password-file", str(ingest_pw))
    assert r.code == 0, r.err
    assert "2 devices + iot-ingest" in r.out
    for f in ("passwd", "acl"):
        assert stat.S_IMODE((out / f).stat().st_mode) == 0o600
    users = dict(line.split(":", 1) for line in (out / "passwd").read_text().splitlines())
    assert sorted(users) == ["iot-ingest", "sim-0000", "sim-0001"]
    assert credentials.verify("ingest-secret", users["iot-ingest"])
    assert credentials.verify(json.loads(pwfile.read_text())["sim-0001"], users["sim-0001"])
    acl = (out / "acl").read_text()
    assert "user sim-0001\ntopic write devices/sim-0001/#" in acl
    # the broker refuses packets over the payload limit plus header room (default 256 KiB + 128 KiB)
    assert "\nmax_packet_size 393216\n" in (out / "listener.conf").read_text()
    assert "sim-0002" not in acl and "sim-0003" not in acl

    monkeypatch.setenv("IOT_BROKER_PASSWORD", "from-env")
    monkeypatch.setenv("IOT_MAX_PAYLOAD_BYTES", "1000")
    r = iot("registry", "export-mosquitto", "--dir", str(out), "--ingest-user", "collector")
    assert r.code == 0, r.err
    assert "\nmax_packet_size 132072\n" in (out / "listener.conf").read_text()  # 1000 + 128 KiB
    users = dict(line.split(":", 1) for line in (out / "passwd").read_text().splitlines())
    assert credentials.verify("from-env", users["collector"])
    r = iot("registry", "export-mosquitto", "--dir", str(out), "--ingest-password-file", str(tmp_path / "missing"))
    assert r.code == 2 and "cannot read" in r.err
    trail = _json(iot("registry", "audit", "--action", "broker.", "--json"))
    assert isinstance(trail, list) and len(trail) == 2


def test_show_merges_stores_and_warns_when_one_is_unreachable(
    migrated: Iot, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    iot = migrated
    assert iot("devices", "add", "d1", "--type", "thermostat").code == 0
    monkeypatch.setenv("IOT_TIMESERIES_URL", f"influxdb1://127.0.0.1:{free_port()}/nowhere")
    try:
        from core.model import Document
        from ingest.stores import open_documents

        docs = open_documents("embedded", data_dir=tmp_path / "data")
        docs.connect()
        docs.write([Document("device_configs", "d1", "k1", {"interval_s": 5}, 1.7e9)])
        docs.close()
        have_docs = True
    except ImportError:
        have_docs = False
    r = iot("devices", "show", "d1", "--json")
    assert r.code == 0, r.err
    shown = json.loads(r.out)
    assert shown["id"] == "d1" and shown["type"] == "thermostat"
    assert "warning: time-series store unavailable" in r.err
    assert len(r.err.strip().splitlines()) == (1 if have_docs else 2)
    if have_docs:
        assert shown["config"]["interval_s"] == 5

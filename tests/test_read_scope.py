"""Reading and replaying hold the key to its role and site (issue 7, item 5): `iot deadletters
list|show|replay`, `iot telemetry query` and `iot registry audit`, on SQLite and PostgreSQL,
through the real entry point; replay against a real mosquitto."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.model import DeadLetter
from registry.db import make_engine
from registry.deadletters import DeadLetterStore
from tests.keyed_cli import Iot, add_key, denied, make_iot, registry_url_for
from tests.servers import Mosquitto

SECRET_A = b'{"secret": "site-A payload"}'
SECRET_B = b'{"secret": "site-B payload"}'


def _store(url: str) -> Iterator[DeadLetterStore]:
    engine = make_engine(url)
    try:
        store = DeadLetterStore(engine)
        store.connect()
        yield store
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return registry_url_for(request, tmp_path)


@pytest.fixture
def iot(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, registry_url: str) -> Iot:
    return make_iot(monkeypatch, capsys, tmp_path, registry_url)


@pytest.fixture
def world(iot: Iot, registry_url: str) -> dict[str, str]:
    """Keys root (admin), opA (operator, site A), viewerA (viewer, site A); devices devA at A and
    devB at B; one dead letter from each, and one from an unregistered device."""
    assert iot("registry", "migrate").code == 0
    root = add_key(iot, None, "--name", "root", "--role", "admin")
    keys = {
        "root": root,
        "opA": add_key(iot, root, "--name", "opA", "--role", "operator", "--site", "A"),
        "viewerA": add_key(iot, root, "--name", "viewerA", "--role", "viewer", "--site", "A"),
    }
    assert iot("devices", "add", "devA", "--site", "A", key=root).code == 0
    assert iot("devices", "add", "devB", "--site", "B", key=root).code == 0
    now = time.time()
    for store in _store(registry_url):
        store.write(
            [
                DeadLetter("invalid_json", "devices/devA/telemetry", SECRET_A, now - 3, "", "devA"),
                DeadLetter("invalid_json", "devices/devB/telemetry", SECRET_B, now - 2, "", "devB"),
                DeadLetter("invalid_json", "devices/ghost/telemetry", b"{ghost", now - 1, "", "ghost"),
            ]
        )
    return keys


def _letters(url: str) -> dict[str, tuple[int, bool]]:
    """device → (id, replayed)."""
    for store in _store(url):
        return {d.device_id or "": (d.id, d.replayed_at is not None) for d in store.list(limit=10)}
    raise AssertionError


@pytest.mark.parametrize("bad_key", [None, "", "iotk_garbage"])
def test_deadletters_need_a_valid_key_once_keys_exist(iot: Iot, world: dict[str, str], bad_key: str | None) -> None:
    for args in (
        ["list"],
        ["list", "--json", "--payload"],
        ["show", "1"],
        ["replay", "--all", "--broker", "mqtt://127.0.0.1:1"],
    ):
        r = iot("deadletters", *args, key=bad_key)
        denied(r)
        assert "secret" not in r.out + r.err


def test_a_site_key_reads_only_its_sites_letters(iot: Iot, world: dict[str, str], registry_url: str) -> None:
    letters = _letters(registry_url)
    r = iot("deadletters", "list", "--json", key=world["viewerA"])
    assert r.code == 0, r.err
    assert [d["device_id"] for d in r.json()] == ["devA"]
    everything = iot("deadletters", "list", "--json", key=world["root"]).json()
    assert sorted(d["device_id"] for d in everything) == ["devA", "devB", "ghost"]
    r = iot("deadletters", "show", str(letters["devB"][0]), key=world["viewerA"])
    assert (r.code, r.err) == (1, f"error: no dead letter with id {letters['devB'][0]}\n")
    r = iot("deadletters", "show", str(letters["devA"][0]), key=world["viewerA"])
    assert r.code == 0 and SECRET_A.decode() in r.out


def test_list_never_dumps_payloads_unless_asked(iot: Iot, world: dict[str, str]) -> None:
    rows = iot("deadletters", "list", "--json", key=world["root"]).json()
    assert all("payload" not in d and d["payload_bytes"] > 0 for d in rows)
    assert {d["payload_preview"] for d in rows} >= {SECRET_B.decode()}  # short: the preview is whole
    full = iot("deadletters", "list", "--json", "--payload", key=world["root"]).json()
    assert {d["payload"] for d in full} == {SECRET_A.decode(), SECRET_B.decode(), "{ghost"}
    r = iot("deadletters", "list", "--limit", "10001", key=world["root"])
    assert r.code == 2


def test_a_viewer_cannot_replay(iot: Iot, world: dict[str, str]) -> None:
    denied(iot("deadletters", "replay", "--all", "--broker", "mqtt://127.0.0.1:1", key=world["viewerA"]))


@pytest.mark.mosquitto
def test_replay_all_by_a_site_operator_touches_only_its_site(
    iot: Iot, world: dict[str, str], registry_url: str, mosquitto_server: Mosquitto
) -> None:
    letters = _letters(registry_url)
    r = iot("deadletters", "replay", str(letters["devB"][0]), "--broker", mosquitto_server.url, key=world["opA"])
    assert r.code == 1 and "no dead letter with id" in r.err
    r = iot("deadletters", "replay", "--all", "--broker", mosquitto_server.url, key=world["opA"])
    assert r.code == 0, r.err
    assert "replayed 1 of 1" in r.out
    after = _letters(registry_url)
    assert after["devA"][1] and not after["devB"][1] and not after["ghost"][1]


def test_telemetry_query_respects_site_scope(iot: Iot, world: dict[str, str]) -> None:
    r = iot("telemetry", "query", "--device", "devB", "--json", key=world["viewerA"])
    assert (r.code, r.err) == (1, "error: no device devB\n")
    r = iot("telemetry", "query", "--device", "ghost", "--json", key=world["viewerA"])  # unregistered: no site
    assert r.code == 1
    r = iot("telemetry", "query", "--device", "devA", "--json", key=world["viewerA"])
    assert r.code == 1 and "no sensor_readings stored for device 'devA'" in r.err  # allowed; the store has none
    r = iot("telemetry", "query", "--device", "devB", "--json", key=world["root"])
    assert r.code == 1 and "no sensor_readings stored for device 'devB'" in r.err
    denied(iot("telemetry", "query", "--device", "devA", key=None))
    denied(iot("telemetry", "query", "--device", "devA", key="iotk_garbage"))


def test_telemetry_plot_respects_site_scope(iot: Iot, world: dict[str, str]) -> None:
    r = iot("telemetry", "plot", "--device", "devA", "--device", "devB", "--field", "t", key=world["viewerA"])
    assert (r.code, r.err) == (1, "error: no device devB\n")
    denied(iot("telemetry", "plot", "--device", "devA", "--field", "t", key=None))
    denied(iot("telemetry", "plot", "--device", "devA", "--field", "t", key="iotk_garbage"))
    r = iot("telemetry", "plot", "--device", "devA", "--field", "t", key=world["viewerA"])
    assert r.code == 1 and "no numeric t for devA" in r.err  # allowed; the store has no data for it


def test_audit_respects_site_scope(iot: Iot, world: dict[str, str]) -> None:
    mine = iot("registry", "audit", "--json", key=world["opA"])
    assert mine.code == 0, mine.err
    targets = {e["target"] for e in mine.json()}
    assert "device:devA" in targets
    assert "device:devB" not in targets and "key:root" not in targets
    everything = {e["target"] for e in iot("registry", "audit", "--json", key=world["root"]).json()}
    assert {"device:devA", "device:devB", "key:root", "key:opA"} <= everything
    assert json.dumps(mine.json())  # plain data

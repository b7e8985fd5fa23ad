"""The gateway boundary: a gateway's messages are accepted only for its own devices (router + real
registry, SQLite and PostgreSQL), refusals are audited, and the exported ACL gives a gateway its
prefix and nothing more (enforced by a real mosquitto)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from core.directory import DeviceDirectory
from core.model import MEASUREMENTS, GatewayClaim, Kind, Reason, RegistryActivity
from ingest.decoding.acl_topics import device_template, device_topics
from ingest.decoding.codecs import Source
from ingest.decoding.decode import Decoder
from ingest.decoding.topics import ContractTopics, Limits, Topics, valid_device_id
from ingest.routing import DEADLETTERS, REGISTRY, TIMESERIES, Batch, Router
from ingest.writing import spool_records
from ingest.writing.destinations import RegistryDestination
from registry.auth import BOOTSTRAP_ACTOR, Actor, PermissionDenied
from registry.db import make_engine, migrate
from registry.devices import add_device, as_dict, export_mosquitto, get_device
from registry.directory import RegistryStore
from registry.gateways import add_gateway, add_sparkplug_gateway, check_prefix, filters_overlap, retire_gateway
from registry.models import AuditEntry
from registry.sparkplug_acl import node_of, parse_node
from tests.cli_runner import run_iot
from tests.servers import Mosquitto, wait_for
from tests.test_mosquitto_acl import NOT_AUTHORIZED
from tests.test_mosquitto_acl import connect as connect  # the fixture

NOW_NS = 1_764_038_400_000_000_000


class GatewayRule:
    """Test-only topic rule ``gw/{gateway}/{device}/telemetry``: a gateway named by its topic."""

    filter = "gw/+/+/telemetry"
    gateway: str | None = "(per topic)"

    def _parts(self, topic: str) -> list[str] | None:
        parts = topic.split("/")
        if len(parts) != 4 or parts[0] != "gw" or parts[3] != "telemetry" or not valid_device_id(parts[2]):
            return None
        return parts

    def source(self, topic: str, limits: Limits) -> Source | None:
        parts = self._parts(topic)
        if parts is None:
            return None
        return Source(parts[2], Kind.TELEMETRY, MEASUREMENTS[Kind.TELEMETRY], limits.max_fields, limits.max_units)

    def device_of(self, topic: str) -> str | None:
        parts = self._parts(topic)
        return parts[2] if parts else None

    def gateway_of(self, topic: str) -> str | None:
        parts = self._parts(topic)
        return parts[1] if parts else None


class DirectRule:
    """Test-only direct rule ``plant/+/{device}/env`` (each device publishes for itself)."""

    filter = "plant/+/+/env"
    gateway = None

    def device_of(self, topic: str) -> str | None:
        parts = topic.split("/")
        return parts[2] if len(parts) == 4 and parts[0] == "plant" and parts[3] == "env" else None


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else f"sqlite:///{tmp_path}/r.db"
    eng = make_engine(str(url))
    migrate(eng)
    yield eng
    eng.dispose()


def _router(store: RegistryStore, policy: Any = "register") -> Router:
    decoder = Decoder(topics=Topics([ContractTopics(), GatewayRule()]))
    directory = DeviceDirectory.of(store.devices())
    return Router(decoder, batch_size=1000, flush_interval=1.0, directory=directory, policy=policy)


def _send(router: Router, topic: str) -> None:
    assert router.handle(topic, b'{"temperature": 21.5}', None, NOW_NS) is None


def _batches(router: Router) -> dict[str, Batch]:
    return {b.dest: b for b in router.drain()}


def test_a_gateway_is_accepted_only_for_its_own_devices(engine: Engine) -> None:
    with Session(engine) as s:
        add_device(s, BOOTSTRAP_ACTOR, "z1", "thermo", gateway="bridge-a")
        add_device(s, BOOTSTRAP_ACTOR, "d1", "thermo")
        s.commit()
    store = RegistryStore(engine)
    store.connect()
    router = _router(store)
    for topic in (
        "gw/bridge-a/z1/telemetry",  # its own device: stored
        "gw/bridge-b/z1/telemetry",  # a hostile gateway claiming bridge-a's device
        "gw/bridge-b/z1/telemetry",
        "gw/bridge-a/d1/telemetry",  # a direct device claimed through a gateway
        "devices/d1/telemetry",  # the direct device itself: as before
        "devices/z1/telemetry",  # a gateway-less topic keeps today's behaviour
        "gw/bridge-a/new1/telemetry",  # unknown: registered behind the gateway it came through
        "gw/bridge-b/new1/telemetry",  # ... and then refused through another one
    ):
        _send(router, topic)
    out = _batches(router)
    stored = [(p.device_id) for p in out[TIMESERIES].items]
    assert stored == ["z1", "d1", "z1", "new1"]
    letters = out[DEADLETTERS].items
    assert [(d.reason, d.topic, d.device_id) for d in letters] == [
        ("wrong_gateway", "gw/bridge-b/z1/telemetry", "z1"),
        ("wrong_gateway", "gw/bridge-b/z1/telemetry", "z1"),
        ("wrong_gateway", "gw/bridge-a/d1/telemetry", "d1"),
        ("wrong_gateway", "gw/bridge-b/new1/telemetry", "new1"),
    ]
    assert "behind gateway 'bridge-a', not behind gateway 'bridge-b'" in letters[0].detail
    assert "publishing for itself" in letters[2].detail
    assert router.counts[(Reason.WRONG_GATEWAY, "dead_lettered")] == 4

    registry = out[REGISTRY]
    assert registry.activity is not None
    assert registry.activity.gateways == {"new1": "bridge-a"}
    RegistryDestination(store).write(registry)
    with Session(engine) as s:
        assert get_device(s, BOOTSTRAP_ACTOR, "new1").gateway == "bridge-a"
        audit = {
            (e.target, e.detail["via"], e.detail["registered"], e.detail["messages"])
            for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "gateway.refused"))
        }
        assert all(
            e.actor == "iot-ingest" for e in s.scalars(select(AuditEntry).where(AuditEntry.action == "gateway.refused"))
        )
    assert audit == {
        ("device:z1", "bridge-b", "bridge-a", 2),
        ("device:d1", "bridge-a", None, 1),
        ("device:new1", "bridge-b", "bridge-a", 1),
    }
    assert store.devices()["new1"].gateway == "bridge-a"

    # a fresh router (restart) reads the learnt gateway from the registry
    again = _router(store)
    _send(again, "gw/bridge-b/new1/telemetry")
    _send(again, "gw/bridge-a/new1/telemetry")
    out = _batches(again)
    assert [d.reason for d in out[DEADLETTERS].items] == ["wrong_gateway"]
    assert [p.device_id for p in out[TIMESERIES].items] == ["new1"]
    store.close()


def test_unknown_devices_through_a_gateway_follow_the_policy(engine: Engine) -> None:
    store = RegistryStore(engine)
    store.connect()
    reject = _router(store, "reject")
    _send(reject, "gw/bridge-a/x1/telemetry")
    assert [d.reason for d in _batches(reject)[DEADLETTERS].items] == ["unknown_device"]
    accept = _router(store, "accept")
    _send(accept, "gw/bridge-a/x1/telemetry")
    _send(accept, "gw/bridge-b/x1/telemetry")  # nothing registered, nothing learnt: the policy accepts
    out = _batches(accept)
    assert DEADLETTERS not in out and len(out[TIMESERIES].items) == 2
    store.close()


def test_claims_survive_the_spool() -> None:
    activity = RegistryActivity(
        {"z1": 1.5}, {"n1": "unknown"}, {}, {"n1": "bridge-a"}, [GatewayClaim("z1", "b", "a", "gw/b/z1/t", 2.0, 3)]
    )
    _, _, back = spool_records.decode(spool_records.encode([], [], activity))
    assert back == activity
    older = spool_records.encode([], [], RegistryActivity({"z1": 1.5}))  # a record without the new keys
    assert spool_records.decode(older)[2] == RegistryActivity({"z1": 1.5})


def test_prefixes() -> None:
    assert filters_overlap("zigbee2mqtt/#", "zigbee2mqtt/bridge/state")
    assert filters_overlap("v3/+/devices/#", "v3/app@t/#")
    assert not filters_overlap("zigbee2mqtt/#", "zigbee2mqtt2/#")
    assert not filters_overlap("a/+", "a/b/c")
    assert not filters_overlap("tele/#", "devices/#")
    for bad in ("#", "+/x", "a/#/b", "a b/#", "a/\n#", "$SYS/#", "a/b+/c", ""):
        with pytest.raises(ValueError, match="invalid gateway prefix"):
            check_prefix(bad)
    assert check_prefix("v3/app@tenant/devices/+/up") == "v3/app@tenant/devices/+/up"


def test_device_templates_from_rules() -> None:
    assert device_template(DirectRule()) == "plant/+/{device}/env"
    assert device_topics([ContractTopics(), DirectRule(), GatewayRule()]) == [
        "devices/{device}/#",
        "plant/+/{device}/env",
    ]


def test_gateway_registration_is_checked_scoped_and_audited(engine: Engine) -> None:
    with Session(engine) as s:
        add_gateway(s, BOOTSTRAP_ACTOR, "bridge-a", "zigbee2mqtt/#", site="lyon")
        with pytest.raises(ValueError, match="overlaps gateway bridge-a"):
            add_gateway(s, BOOTSTRAP_ACTOR, "bridge-b", "zigbee2mqtt/bridge/#")
        with pytest.raises(ValueError, match="overlaps the devices' own topics"):
            add_gateway(s, BOOTSTRAP_ACTOR, "bridge-c", "devices/+/telemetry")
        paris = Actor("paris-admin", "admin", ("paris",))
        with pytest.raises(PermissionDenied):
            add_gateway(s, paris, "bridge-d", "tele/#", site="lyon")
        with pytest.raises(LookupError):  # lyon's gateway is not paris's to put a device behind
            add_device(s, paris, "p1", site="paris", gateway="bridge-a")
        with pytest.raises(ValueError, match="a gateway is named"):
            add_device(s, BOOTSTRAP_ACTOR, "bridge-a")
        retire_gateway(s, BOOTSTRAP_ACTOR, "bridge-a")
        add_gateway(s, BOOTSTRAP_ACTOR, "bridge-b", "zigbee2mqtt/#")  # the prefix is free again
        s.commit()
        actions = [e.action for e in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions == ["gateway.add", "gateway.retire", "gateway.add"]


def test_cli_gateways_and_devices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("IOT_REGISTRY_URL", f"sqlite:///{tmp_path}/r.db")
    assert run_iot(monkeypatch, capsys, "registry", "migrate").code == 0
    r = run_iot(monkeypatch, capsys, "gateways", "add", "bridge-a", "--prefix", "zigbee2mqtt/#")
    assert r.code == 0 and "secret (shown once" in r.out
    bad = run_iot(monkeypatch, capsys, "gateways", "add", "bridge-b", "--prefix", "#")
    assert bad.code != 0 and bad.err.count("\n") == 1 and "invalid gateway prefix" in bad.err
    assert run_iot(monkeypatch, capsys, "devices", "add", "z1", "--gateway", "bridge-a").code == 0
    shown = run_iot(monkeypatch, capsys, "devices", "list", "--json")
    assert '"gateway": "bridge-a"' in shown.out
    listed = run_iot(monkeypatch, capsys, "gateways", "list", "--json")
    assert '"prefix": "zigbee2mqtt/#"' in listed.out and "secret_hash" not in listed.out


@pytest.fixture
def broker_fleet(tmp_path: Path, mosquitto: Mosquitto) -> dict[str, str]:
    """Two gateways, a device behind one of them and a direct device, exported to the broker."""
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    migrate(engine)
    with Session(engine) as s:
        secrets = {
            "bridge-a": add_gateway(s, BOOTSTRAP_ACTOR, "bridge-a", "zigbee2mqtt/#"),
            "lns-b": add_gateway(s, BOOTSTRAP_ACTOR, "lns-b", "v3/app@tenant/#"),
        }
        add_device(s, BOOTSTRAP_ACTOR, "z1", gateway="bridge-a")
        secrets["d1"] = add_device(s, BOOTSTRAP_ACTOR, "d1", with_secret=True) or ""
        passwd, acl, _ = export_mosquitto(
            s, BOOTSTRAP_ACTOR, tmp_path / "broker", "iot-ingest", "ingest-pw", device_topics=["plant/+/{device}/env"]
        )
        s.commit()
        assert as_dict(get_device(s, BOOTSTRAP_ACTOR, "z1"))["gateway"] == "bridge-a"
    engine.dispose()
    text = acl.read_text()
    assert "user bridge-a\ntopic write zigbee2mqtt/#\n" in text
    assert "user d1\ntopic write devices/d1/#\ntopic write plant/+/d1/env\n" in text
    assert "user z1" not in text  # behind a gateway: no topics of its own
    mosquitto.stop()
    mosquitto.extra_conf = (passwd.parent / "listener.conf").read_text()
    mosquitto.start()
    return secrets


@pytest.mark.mosquitto
def test_gateway_credentials_write_only_under_their_prefix(broker_fleet: dict[str, str], connect: Any) -> None:
    ingest = connect("iot-ingest", "ingest-pw")
    ingest.client.subscribe([("zigbee2mqtt/#", 1), ("v3/#", 1), ("devices/#", 1), ("plant/#", 1)])
    bridge = connect("bridge-a", broker_fleet["bridge-a"])
    assert bridge.connack.value == 0
    wait_for(
        lambda: (
            bridge.publish("zigbee2mqtt/z1", b'{"temperature": 21.5}').value == 0
            and ("zigbee2mqtt/z1", b'{"temperature": 21.5}') in ingest.messages
        ),
        10,
        "the ingest account to receive the gateway's message",
    )
    assert bridge.publish("v3/app@tenant/devices/z1/up", b"{}").value == NOT_AUTHORIZED  # another gateway's prefix
    assert bridge.publish("devices/d1/telemetry", b'{"t": 1}').value == NOT_AUTHORIZED  # a device's own topics
    assert bridge.publish("plant/x/d1/env", b'{"t": 1}').value == NOT_AUTHORIZED
    lns = connect("lns-b", broker_fleet["lns-b"])
    assert lns.publish("zigbee2mqtt/z1", b'{"temperature": 99}').value == NOT_AUTHORIZED
    assert lns.publish("v3/app@tenant/devices/z9/up", b"{}").value == 0
    direct = connect("d1", broker_fleet["d1"])
    assert direct.publish("plant/hall/d1/env", b"{}").value == 0  # its mapped topic
    assert direct.publish("plant/hall/d2/env", b"{}").value == NOT_AUTHORIZED
    assert direct.publish("zigbee2mqtt/z1", b"{}").value == NOT_AUTHORIZED
    wait_for(lambda: ("plant/hall/d1/env", b"{}") in ingest.messages, 10, "the direct device's mapped message")
    refused = {b'{"temperature": 99}', b'{"t": 1}'}
    assert not any(payload in refused for _, payload in ingest.messages)


def test_sparkplug_gateway_registration() -> None:
    with pytest.raises(ValueError, match="invalid Sparkplug edge node"):
        parse_node("plant1")
    with pytest.raises(ValueError, match="invalid Sparkplug edge node"):
        parse_node("plant1/+")
    assert parse_node("plant1/edge-7").prefix == "spBv1.0/plant1/+/edge-7/#"
    assert node_of("spBv1.0/plant1/+/edge-7/#") == parse_node("plant1/edge-7")
    assert node_of("zigbee2mqtt/#") is None


def test_cli_sparkplug_gateway(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any) -> None:
    monkeypatch.setenv("IOT_REGISTRY_URL", f"sqlite:///{tmp_path}/r.db")
    assert run_iot(monkeypatch, capsys, "registry", "migrate").code == 0
    r = run_iot(monkeypatch, capsys, "gateways", "add", "edge-1", "--sparkplug", "plant1/edge1")
    assert r.code == 0 and "plant1/edge1" in r.out and "secret (shown once" in r.out
    for bad in (("plant1:edge2", "--sparkplug", "plant1/edge2"), ("e2", "--sparkplug", "plant1/edge1")):
        refused = run_iot(monkeypatch, capsys, "gateways", "add", *bad)  # ':' in a username; a taken node
        assert refused.code != 0 and refused.err.count("\n") == 1
    neither = run_iot(monkeypatch, capsys, "gateways", "add", "e3")
    assert neither.code != 0 and "--sparkplug" in neither.err


@pytest.fixture
def sparkplug_fleet(tmp_path: Path, mosquitto: Mosquitto) -> dict[str, str]:
    """Two Sparkplug edge-node credentials of one group, exported to the broker."""
    engine = make_engine(f"sqlite:///{tmp_path / 'registry.sqlite3'}")
    migrate(engine)
    with Session(engine) as s:
        secrets = {e: add_sparkplug_gateway(s, BOOTSTRAP_ACTOR, f"{e}-gw", f"plant1/{e}") for e in ("e1", "e2")}
        passwd, _, _ = export_mosquitto(s, BOOTSTRAP_ACTOR, tmp_path / "broker", "iot-ingest", "ingest-pw")
        s.commit()
    engine.dispose()
    mosquitto.stop()
    mosquitto.extra_conf = (passwd.parent / "listener.conf").read_text()
    mosquitto.start()
    return secrets


@pytest.mark.mosquitto
def test_sparkplug_edge_node_publishes_only_its_own_namespace(sparkplug_fleet: dict[str, str], connect: Any) -> None:
    host = connect("iot-ingest", "ingest-pw")
    host.client.subscribe([("spBv1.0/#", 0)])
    edge = connect("e1-gw", sparkplug_fleet["e1"])
    edge.client.subscribe([("spBv1.0/plant1/NCMD/e1", 1), ("spBv1.0/STATE/+", 1)])
    assert edge.connack.value == 0
    wait_for(
        lambda: (
            edge.publish("spBv1.0/plant1/NDATA/e1", b"n").value == 0
            and ("spBv1.0/plant1/NDATA/e1", b"n") in host.messages
        ),
        10,
        "the host to receive the edge node's NDATA",
    )
    assert edge.publish("spBv1.0/plant1/DDATA/e1/d1", b"d").value == 0
    assert edge.publish("spBv1.0/plant1/NBIRTH/e1", b"b").value == 0
    assert host.publish("spBv1.0/plant1/NCMD/e1", b"rebirth").value == 0  # the host may command it
    assert host.publish("spBv1.0/STATE/iot-host", b"{}").value == 0
    wait_for(
        lambda: {("spBv1.0/plant1/NCMD/e1", b"rebirth"), ("spBv1.0/STATE/iot-host", b"{}")} <= set(edge.messages),
        10,
        "the edge node to read its command and the host's STATE",
    )
    wait_for(lambda: ("spBv1.0/plant1/DDATA/e1/d1", b"d") in host.messages, 10, "the host to receive DDATA")
    forged = [
        "spBv1.0/plant1/NDATA/e2",  # another edge node of its group
        "spBv1.0/plant1/DDATA/e2/d1",
        "spBv1.0/plant2/NDATA/e1",  # its edge name in another group
        "spBv1.0/STATE/iot-host",  # the host's STATE
        "spBv1.0/plant1/NCMD/e1",  # commands are the host's
        "spBv1.0/plant1/DCMD/e1/d1",
        "spBv1.0/plant1/DDATA/e1/d1/x",
    ]
    for topic in forged:
        assert edge.publish(topic, b"forged").value == NOT_AUTHORIZED, topic
    assert not any(payload == b"forged" for _, payload in host.messages)
    other = connect("e2-gw", sparkplug_fleet["e2"])
    assert other.publish("spBv1.0/plant1/NDATA/e1", b"forged").value == NOT_AUTHORIZED
    assert other.publish("spBv1.0/plant1/NDATA/e2", b"n2").value == 0

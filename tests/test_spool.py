import pickle
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from core.model import DeadLetter, Document, Point, RegistryActivity, StatusChange
from ingest.writing.spool import Spool, SpoolFull
from ingest.writing.spool_records import VERSION, Record, RecordError, decode, encode

LEGACY = Path(__file__).parent / "data" / "spool_pickle_v0"
"""A spool directory written by the release before versioned records (``Spool`` at commit 16d4f55:
pickles naming ``ingest.model``), one batch per destination."""


def batch(i: int, payload: bytes = b"{}") -> Record:
    return ([Point("sensor_readings", "d1", {"n": float(i)}, i)], [("devices/d1/telemetry", payload, float(i))], None)


def test_records_replay_in_order_and_survive_reopen(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    for i in range(5):
        s.append(batch(i))
    assert s.peek() == batch(0)
    s.pop()
    s.close()
    s2 = Spool(tmp_path, 1 << 20)
    assert len(s2) == 4  # a fresh process sees what was not popped
    got = []
    while (r := s2.peek()) is not None:
        got.append(r[0][0].ts_ns)
        s2.pop()
    assert got == [1, 2, 3, 4]
    assert len(s2) == 0 and s2.bytes == 0
    s2.append(batch(5))
    assert s2.peek() == batch(5)
    s2.close()


def test_full_spool_refuses_and_recovers(tmp_path: Path) -> None:
    s = Spool(tmp_path, 2000)
    s.append(batch(1, b"x" * 1000))
    with pytest.raises(SpoolFull):
        s.append(batch(2, b"y" * 1000))
    assert s.peek() == batch(1, b"x" * 1000)
    s.pop()
    s.append(batch(2, b"y" * 1000))
    assert s.peek() == batch(2, b"y" * 1000)
    s.close()


def test_torn_tail_is_ignored(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    s.append(batch(1))
    s.close()
    seg = next(tmp_path.glob("*.seg"))
    with seg.open("ab") as f:
        f.write(b"\x10\x00\x00\x00garbage")
    s2 = Spool(tmp_path, 1 << 20)
    assert s2.peek() == batch(1)
    assert len(s2) == 1
    s2.close()


EVERY_KIND: list[Record] = [
    (
        [
            Point(
                "sensor_readings",
                "dev-1",
                {"temperature": 21.5, "ok": True, "mode": "eco"},
                1_700_000_000_123_456_789,
                {"site": "plant-a"},
            )
        ],
        [("devices/dev-1/telemetry", b'{"temperature":21.5}', 1700000000.5)],
        None,
    ),
    (
        [Document("device_configs", "dev-1", "k1", {"interval": 5, "nested": {"a": [1, 2.5, None]}}, 1700000001.25)],
        [("devices/dev-1/config", b'{"interval":5}', 1700000001.25)],
        None,
    ),
    (
        [StatusChange("dev-2", False, 1700000002.0)],
        [("devices/dev-2/status", b"offline", 1700000002.0)],
        RegistryActivity({"dev-1": 1700000001.25}, {"dev-3": "unknown"}, {"dev-1": "1.2.3"}),
    ),
    (
        [
            DeadLetter(
                "invalid_json", "devices/dev-1/telemetry", b"\xff{not json", 1700000003.0, "Expecting value", "dev-1"
            )
        ],
        [],
        None,
    ),
]


def test_every_item_kind_round_trips_as_versioned_json() -> None:
    for record in EVERY_KIND:
        data = encode(*record)
        assert data[0] == VERSION and b"pickle" not in data
        assert decode(data) == record


def test_records_from_the_pickle_release_replay_after_the_upgrade(tmp_path: Path) -> None:
    """Records the previous release spooled (pickles of ``ingest.model`` classes, without the
    fields added since, e.g. ``DeadLetter.original_size``) replay in order, followed by what this
    release appends: an upgrade strands nothing."""
    spool_dir = tmp_path / "spool"
    shutil.copytree(LEGACY, spool_dir)
    s = Spool(spool_dir, 1 << 20)
    assert len(s) == 4
    s.append(batch(9))
    got = []
    while (r := s.peek()) is not None:
        got.append(r)
        s.pop()
    assert got == [*EVERY_KIND, batch(9)]
    s.close()


V1_REGISTRY = (
    b'\x01{"items":[{"type":"status","device_id":"dev-2","online":false,"at":1700000002.0}],'
    b'"origins":[["devices/dev-2/status","b2ZmbGluZQ==",1700000002.0]],'
    b'"extra":{"last_seen":{"dev-1":1700000001.25},"register":{"dev-3":"unknown"},"firmware":{"dev-1":"1.2.3"}}}'
)
"""A registry batch as version 1 (``ingest.writing.spool_records`` at commit 480165e) wrote it: the registry
activity in a string-keyed ``extra`` object."""
V1_TELEMETRY = (
    b'\x01{"items":[{"type":"point","measurement":"sensor_readings","device_id":"d1","fields":{"n":7.0},'
    b'"ts_ns":7,"tags":{}}],"origins":[["devices/d1/telemetry","e30=",7.0]],"extra":{}}'
)


def test_version_1_records_replay_with_their_registry_activity_typed(tmp_path: Path) -> None:
    """A spool written by the release before typed registry activity (version 1 records) replays
    after the upgrade, the ``extra`` object read as a :class:`RegistryActivity`, followed by what
    this release appends (version 2)."""
    seg = tmp_path / "00000001.seg"
    seg.write_bytes(b"".join(struct.pack("<II", len(d), zlib.crc32(d)) + d for d in (V1_REGISTRY, V1_TELEMETRY)))
    s = Spool(tmp_path, 1 << 20)
    assert len(s) == 2
    s.append(batch(9))
    got = []
    while (r := s.peek()) is not None:
        got.append(r)
        s.pop()
    assert got == [EVERY_KIND[2], batch(7), batch(9)]
    assert encode(*EVERY_KIND[2])[0] == VERSION == 2
    s.close()


def test_unknown_versions_and_foreign_pickles_are_refused() -> None:
    with pytest.raises(RecordError, match="version 3"):
        decode(bytes([3]) + b"{}")
    evil = pickle.dumps(([shutil.rmtree], [], {}))
    with pytest.raises(RecordError, match=r"shutil\.rmtree"):
        decode(evil)
    with pytest.raises(TypeError, match="cannot spool"):
        encode([object()], [], None)  # type: ignore[list-item]

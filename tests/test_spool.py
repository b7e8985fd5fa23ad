import json
import pickle
import shutil
import struct
import zlib
from pathlib import Path

import pytest

from core.model import DeadLetter, Document, Point, RegistryActivity, StatusChange
from ingest.routing import REGISTRY, TIMESERIES
from ingest.writing.spool import Spool, SpoolFull
from ingest.writing.spool_quarantine import Damage
from ingest.writing.spool_records import HOLDS, VERSION, Record, RecordError, decode, encode

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


# -- damage: nothing is dropped silently --------------------------------------------------------


def frames_of(seg: Path) -> list[tuple[int, int]]:
    """(start, end) of each record frame in ``seg``, read with the on-disk framing (length, crc32)."""
    data, out, pos = seg.read_bytes(), [], 0
    while pos < len(data):
        length, _ = struct.unpack_from("<II", data, pos)
        out.append((pos, pos + 8 + length))
        pos += 8 + length
    return out


def six_records(directory: Path) -> tuple[Path, list[tuple[int, int]]]:
    s = Spool(directory, 1 << 20)
    for i in range(6):
        s.append(batch(i, b"x" * (10 + i)))
    s.close()
    (seg,) = directory.glob("*.seg")
    frames = frames_of(seg)
    assert len(frames) == 6
    return seg, frames


def replay(s: Spool) -> list[int]:
    got = []
    while (r := s.peek()) is not None:
        got.append(r[0][0].ts_ns)
        s.pop()
    return got


def quarantined(directory: Path) -> list[tuple[bytes, dict[str, object]]]:
    q = directory / "quarantine"
    return [(p.read_bytes(), json.loads(p.with_suffix(".reason").read_text())) for p in sorted(q.glob("*.bad"))]


@pytest.mark.parametrize("where", [40, 3, 0], ids=["in-the-data", "in-the-length", "in-the-header"])
def test_a_flipped_byte_sets_one_record_aside_and_the_rest_replays(tmp_path: Path, where: int) -> None:
    seg, frames = six_records(tmp_path)
    data = bytearray(seg.read_bytes())
    start, end = frames[2]
    original = bytes(data[start:end])
    data[start + where] ^= 0x40
    seg.write_bytes(bytes(data))
    s = Spool(tmp_path, 1 << 20)
    assert len(s) == 5  # the records after the bad one are counted too
    assert replay(s) == [0, 1, 3, 4, 5]
    ((kept, reason),) = quarantined(tmp_path)
    assert len(kept) == len(original) and kept != original  # exactly its bytes, as damaged
    assert bytes(b ^ o for b, o in zip(kept, original, strict=True)).count(0) == len(original) - 1
    assert reason["kind"] == Damage.DAMAGED and reason["offset"] == start and reason["segment"] == seg.name
    (entry,) = s.take_set_aside()
    assert entry.kind is Damage.DAMAGED and entry.size == len(original)
    assert s.quarantine.held() == {Damage.DAMAGED: 1}
    assert not seg.exists() and s.take_set_aside() == []
    s.close()


def test_a_truncated_last_record_is_set_aside_with_its_bytes(tmp_path: Path) -> None:
    seg, frames = six_records(tmp_path)
    data = seg.read_bytes()
    start, end = frames[5]
    seg.write_bytes(data[: end - 7])
    s = Spool(tmp_path, 1 << 20)
    assert replay(s) == [0, 1, 2, 3, 4]
    ((kept, reason),) = quarantined(tmp_path)
    assert kept == data[start : end - 7]
    assert reason["kind"] == Damage.TRUNCATED and "only" in str(reason["detail"])
    assert [e.kind for e in s.take_set_aside()] == [Damage.TRUNCATED]
    s.close()


def test_a_cursor_moves_past_set_aside_bytes(tmp_path: Path) -> None:
    """A damaged record is set aside once, even if the replay stops (store down) and a new process resumes."""
    seg, frames = six_records(tmp_path)
    data = bytearray(seg.read_bytes())
    data[frames[1][0] + 30] ^= 1
    seg.write_bytes(bytes(data))
    s = Spool(tmp_path, 1 << 20)
    assert s.peek() == batch(0, b"x" * 10)
    s.pop()
    assert s.peek() == batch(2, b"x" * 12)  # not popped: the store refused it
    assert s.peek() == batch(2, b"x" * 12)
    s.close()
    s2 = Spool(tmp_path, 1 << 20)
    assert replay(s2) == [2, 3, 4, 5]
    assert len(quarantined(tmp_path)) == 1
    s2.close()


def test_zero_filled_tail_and_zero_length_segment(tmp_path: Path) -> None:
    """A zero-length segment holds nothing and is dropped; zeros after the last record (a file
    system's answer to a crash) are bytes that are not a record: set aside, not replayed."""
    seg, _ = six_records(tmp_path)
    (tmp_path / "00000000.seg").write_bytes(b"")
    with seg.open("ab") as f:
        f.write(b"\0" * 32)
    s = Spool(tmp_path, 1 << 20)
    assert replay(s) == [0, 1, 2, 3, 4, 5]
    assert [r["kind"] for _, r in quarantined(tmp_path)] == [Damage.DAMAGED]  # "declaring no data"
    assert list(tmp_path.glob("*.seg")) == []
    s.close()
    (tmp_path / "00000007.seg").write_bytes(b"")
    s2 = Spool(tmp_path, 1 << 20)  # only an empty segment: dropped at once, nothing set aside
    assert len(s2) == 0 and list(tmp_path.glob("*.seg")) == [] and s2.take_set_aside() == []
    s2.append(batch(9))
    assert replay(s2) == [9]
    s2.close()


def test_a_segment_of_another_destination_is_moved_aside_whole(tmp_path: Path) -> None:
    ts, reg = tmp_path / "timeseries", tmp_path / "registry"
    seg, _ = six_records(ts)
    original = seg.read_bytes()
    theirs = Spool(reg, 1 << 20, holds=HOLDS[REGISTRY])
    theirs.append(EVERY_KIND[2])
    theirs.close()
    shutil.copy(seg, reg / "00000000.seg")  # a time-series segment in the registry's spool, first in line
    s = Spool(reg, 1 << 20, holds=HOLDS[REGISTRY])
    assert len(s) == 7
    assert s.peek() == EVERY_KIND[2]  # not blocked: its own record is next
    s.pop()
    assert s.peek() is None and len(s) == 0
    ((kept, reason),) = quarantined(reg)
    assert kept == original and reason["kind"] == Damage.FOREIGN and reason["records"] == 6
    assert "Point" in str(reason["detail"])
    (entry,) = s.take_set_aside()
    assert entry.records == 6
    s.close()


def test_records_of_another_destination_or_unreadable_are_set_aside_one_by_one(tmp_path: Path) -> None:
    """A foreign or unreadable record among the spool's own (not at a segment's start) goes alone."""
    records = [EVERY_KIND[0], EVERY_KIND[1], EVERY_KIND[0]]
    seg = tmp_path / "00000001.seg"
    seg.write_bytes(
        b"".join(
            struct.pack("<II", len(d), zlib.crc32(d)) + d for d in [*map(lambda r: encode(*r), records), b"\x03{}"]
        )
        + struct.pack("<II", len(d := encode(*EVERY_KIND[0])), zlib.crc32(d))
        + d
    )
    s = Spool(tmp_path, 1 << 20, holds=HOLDS[TIMESERIES])
    got = []
    while (r := s.peek()) is not None:
        got.append(r)
        s.pop()
    assert got == [EVERY_KIND[0], EVERY_KIND[0], EVERY_KIND[0]]
    kinds = [str(r["kind"]) for _, r in quarantined(tmp_path)]
    assert sorted(kinds) == [Damage.FOREIGN, Damage.UNREADABLE]
    s.close()

"""Payloads made by the Eclipse Tahu reference implementation decode (tests/data/sparkplug_tahu:
how they were made is in make_vectors.py there; no Tahu and no network needed here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.model import Bundle, Point, Reason, Rejected, StatusChange
from ingest.decoding.decode import Decoder
from ingest.decoding.sparkplug import sparkplug_rules
from ingest.decoding.sparkplug.state import MemoryState, NoRebirths
from ingest.decoding.topics import ContractTopics, Topics

DATA = Path(__file__).parent / "data" / "sparkplug_tahu"
TS_NS = 1_764_038_400_000 * 1_000_000
NOW_NS = TS_NS + 5_000_000_000
NODE, DEVICE = "spBv1.0/g/{}/e", "spBv1.0/g/{}/e/d"
VALUES = {
    "Inputs.int8": -5.0,
    "Inputs.int16": -300.0,
    "Inputs.int32": -70000.0,
    "Inputs.int64": float(-(2**40)),
    "Inputs.uint8": 250.0,
    "Inputs.uint16": 65000.0,
    "Inputs.uint32": 4e9,
    "Inputs.uint64": float(2**40),
    "Inputs.float": 1.5,
    "Inputs.double": -2.25,
    "Inputs.boolean": True,
    "Inputs.string": "hello",
    "Inputs.text": "some text",
    "Inputs.datetime": float(TS_NS // 1_000_000 - 1000),
}


def vector(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.fixture
def decoder() -> Decoder:
    return Decoder(topics=Topics([ContractTopics(), *sparkplug_rules(MemoryState(), NoRebirths())]))


def test_tahu_session_decodes(decoder: Decoder) -> None:
    nbirth = decoder.decode(NODE.format("NBIRTH"), vector("nbirth.bin"), NOW_NS)
    assert nbirth == Bundle(
        [
            Point(
                "sensor_readings",
                "g:e",
                {"Node_Control.Rebirth": False, "Properties.Hardware_Make": "Raspberry Pi"},
                TS_NS,
                {},
            )
        ],
        [StatusChange("g:e", True, NOW_NS / 1e9)],
    )
    dbirth = decoder.decode(DEVICE.format("DBIRTH"), vector("dbirth.bin"), NOW_NS)
    assert isinstance(dbirth, Bundle)
    assert [p.fields for p in dbirth.points] == [VALUES]  # Bytes is remembered, not stored
    ddata = decoder.decode(DEVICE.format("DDATA"), vector("ddata.bin"), NOW_NS)
    assert isinstance(ddata, list)
    by_tags = {tuple(p.tags.items()): p for p in ddata}
    current = by_tags[()]
    assert current.fields == VALUES and current.ts_ns == TS_NS + 1_000_000_000 and current.device_id == "g:e:d"
    historical = by_tags[(("historical", "true"),)]
    assert historical.fields == {"Inputs.double": 9.5} and historical.ts_ns == TS_NS - 60_000_000_000
    death = decoder.decode(NODE.format("NDEATH"), vector("ndeath.bin"), NOW_NS)  # bdSeq 0, as the birth's
    at = NOW_NS / 1e9
    assert death == Bundle([], [StatusChange("g:e", False, at), StatusChange("g:e:d", False, at)])


def test_tahu_bytes_metric_is_dead_lettered(decoder: Decoder) -> None:
    decoder.decode(DEVICE.format("DBIRTH"), vector("dbirth.bin"), NOW_NS)
    with pytest.raises(Rejected) as e:
        decoder.decode(DEVICE.format("DDATA"), vector("ddata_bytes.bin"), NOW_NS)
    assert e.value.reason is Reason.WRONG_TYPE and "Outputs.blob" in e.value.detail and "BYTES" in e.value.detail

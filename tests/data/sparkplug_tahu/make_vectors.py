"""Made the Sparkplug B test vectors in this directory with the Eclipse Tahu reference implementation.

Run once, by hand, with eclipse/tahu's Python core on the path (commit 5736e404889d4b95910613040a99ba79589ffb13:
python/core/sparkplug_b.py, sparkplug_b_pb2.py, array_packer.py) and ``protobuf`` installed, with
``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python`` (Tahu's generated module predates protobuf 4's C runtime):

    PYTHONPATH=tahu/python/core PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python python make_vectors.py

Not run by the tests (they need no network and no Tahu): they decode the ``.bin`` files it wrote.
"""

from __future__ import annotations

from pathlib import Path

import sparkplug_b as sp
from sparkplug_b import MetricDataType as T

HERE = Path(__file__).parent
TS = 1_764_038_400_000  # ms: 2025-11-25T02:40:00Z

SCALARS = [  # name, alias, datatype, value
    ("Inputs/int8", 1, T.Int8, -5),
    ("Inputs/int16", 2, T.Int16, -300),
    ("Inputs/int32", 3, T.Int32, -70000),
    ("Inputs/int64", 4, T.Int64, -(2**40)),
    ("Inputs/uint8", 5, T.UInt8, 250),
    ("Inputs/uint16", 6, T.UInt16, 65000),
    ("Inputs/uint32", 7, T.UInt32, 4000000000),
    ("Inputs/uint64", 8, T.UInt64, 2**40),
    ("Inputs/float", 9, T.Float, 1.5),
    ("Inputs/double", 10, T.Double, -2.25),
    ("Inputs/boolean", 11, T.Boolean, True),
    ("Inputs/string", 12, T.String, "hello"),
    ("Inputs/text", 13, T.Text, "some text"),
    ("Inputs/datetime", 14, T.DateTime, TS - 1000),
]


def write(name: str, payload: object) -> None:
    (HERE / name).write_bytes(payload.SerializeToString())  # type: ignore[attr-defined]


def main() -> None:
    death = sp.getNodeDeathPayload()  # bdSeq 0, and the counter moves on
    death.timestamp = TS
    write("ndeath.bin", death)
    birth = sp.getNodeBirthPayload()  # seq 0, bdSeq 0
    birth.timestamp = TS
    sp.addMetric(birth, "Node Control/Rebirth", 100, T.Boolean, False, TS)
    sp.addMetric(birth, "Properties/Hardware Make", 101, T.String, "Raspberry Pi", TS)
    write("nbirth.bin", birth)
    dbirth = sp.getDeviceBirthPayload()
    dbirth.timestamp = TS
    for name, alias, datatype, value in SCALARS:
        sp.addMetric(dbirth, name, alias, datatype, value, TS)
    sp.addMetric(dbirth, "Outputs/blob", 15, T.Bytes, b"\x00\x01", TS)
    write("dbirth.bin", dbirth)
    ddata = sp.getDdataPayload()
    ddata.timestamp = TS + 1000
    for _, alias, datatype, value in SCALARS:  # aliases only, as the spec recommends
        sp.addMetric(ddata, None, alias, datatype, value, TS + 1000)
    sp.addHistoricalMetric(ddata, None, 10, T.Double, 9.5).timestamp = TS - 60_000
    sp.addNullMetric(ddata, None, 9, T.Float)
    write("ddata.bin", ddata)
    blob = sp.getDdataPayload()
    sp.addMetric(blob, None, 15, T.Bytes, b"\x02", TS + 2000)
    write("ddata_bytes.bin", blob)


if __name__ == "__main__":
    main()

"""Sparkplug ``seq`` gaps: a lost message found after the reorder wait asks for a rebirth and is
counted; data that decodes with known aliases is still stored; only a process that sees the whole
stream tracks ``seq`` (ingest/decoding/sparkplug/seq.py, iot/service.py)."""

from __future__ import annotations

from core.config import Settings
from core.model import Point
from ingest.decoding.decode import Decoder
from ingest.decoding.sparkplug import sparkplug_rules
from ingest.decoding.sparkplug.encode import MetricValue, encode
from ingest.decoding.sparkplug.proto import DataType as T
from ingest.decoding.sparkplug.rule import SparkplugRule
from ingest.decoding.sparkplug.seq import SEQ_LOST, SeqTracker
from ingest.decoding.sparkplug.state import MemoryState, NoRebirths
from ingest.decoding.topics import Topics
from iot.service import build_topics

NOW_NS = 1_764_038_400_000_000_000
NOW_MS = NOW_NS // 1_000_000
NB, ND = "spBv1.0/plant1/NBIRTH/edge1", "spBv1.0/plant1/NDATA/edge1"


class Counted:
    def __init__(self) -> None:
        self.counts: dict[str, float] = {}

    def inc(self, name: str, value: float = 1.0, **labels: str) -> None:
        self.counts[name] = self.counts.get(name, 0.0) + value


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def make() -> tuple[Decoder, NoRebirths, Counted, Clock]:
    rebirths, counted, clock = NoRebirths(), Counted(), Clock()
    seqs = SeqTracker(rebirths, counted, reorder_s=2.0, clock=clock)
    decoder = Decoder(topics=Topics(sparkplug_rules(MemoryState(), rebirths, seqs)))
    birth = [MetricValue(T.INT64, 1, name="bdSeq"), MetricValue(T.DOUBLE, 1.0, name="Sensors/t", alias=1)]
    decoder.decode(NB, encode(birth, seq=0, timestamp_ms=NOW_MS), NOW_NS)
    return decoder, rebirths, counted, clock


def data(decoder: Decoder, seq: int, value: float) -> object:
    return decoder.decode(ND, encode([MetricValue(T.DOUBLE, value, alias=1)], seq=seq, timestamp_ms=NOW_MS), NOW_NS)


def test_a_gap_past_the_reorder_wait_is_a_lost_message_and_asks_for_a_rebirth() -> None:
    decoder, rebirths, counted, clock = make()
    assert data(decoder, 1, 1.0) == [Point("sensor_readings", "plant1:edge1", {"Sensors.t": 1.0}, NOW_NS, {})]
    assert data(decoder, 4, 4.0) == [Point("sensor_readings", "plant1:edge1", {"Sensors.t": 4.0}, NOW_NS, {})]
    assert rebirths.requested == [] and counted.counts == {}  # 2 and 3 may still come: awaited
    clock.t += 1.0
    data(decoder, 2, 2.0)  # reordered, within the wait: not lost
    clock.t += 1.5
    stored = data(decoder, 5, 5.0)  # 3 is still missing past the wait: lost
    assert stored == [Point("sensor_readings", "plant1:edge1", {"Sensors.t": 5.0}, NOW_NS, {})]  # still stored
    assert rebirths.requested == [("plant1", "edge1")] and counted.counts == {SEQ_LOST: 1.0}
    data(decoder, 6, 6.0)
    assert counted.counts == {SEQ_LOST: 1.0}  # counted once


def test_wrapping_duplicates_and_a_new_birth_are_not_gaps() -> None:
    decoder, rebirths, counted, clock = make()
    for seq in [*range(1, 256), 0, 1, 1, 0]:  # wraps after 255; a duplicate and a stale one change nothing
        data(decoder, seq, 1.0)
    clock.t += 10
    birth = [MetricValue(T.INT64, 2, name="bdSeq"), MetricValue(T.DOUBLE, 1.0, name="Sensors/t", alias=1)]
    decoder.decode(NB, encode(birth, seq=0, timestamp_ms=NOW_MS), NOW_NS)  # the sequence starts again
    data(decoder, 1, 1.0)
    clock.t += 10
    data(decoder, 2, 1.0)
    assert rebirths.requested == [] and counted.counts == {}


def _seqs(topics: Topics) -> list[SeqTracker | None]:
    return [r.seqs for r in topics.rules if isinstance(r, SparkplugRule)]


def test_only_a_process_that_sees_the_whole_stream_tracks_seq() -> None:
    single = build_topics(Settings(sparkplug=True), counts=Counted())
    assert all(isinstance(s, SeqTracker) for s in _seqs(single)) and _seqs(single)
    worker = build_topics(Settings(sparkplug=True, share_group="iot", workers=3), counts=Counted())
    assert _seqs(worker) and all(s is None for s in _seqs(worker))


def test_the_sparkplug_host_can_have_its_own_broker_account() -> None:
    """Where the broker sets use_username_as_clientid, the host on the daemon's account would take
    the daemon's session over: IOT_SPARKPLUG_BROKER_URL gives it an account of its own."""
    from core.config import Settings
    from iot.service import build_sparkplug_host

    own = Settings(
        _env_file=None,
        sparkplug=True,
        broker_url="mqtt://iot-ingest@127.0.0.1:1883",
        sparkplug_broker_url="mqtt://iot-host@127.0.0.1:1883",
        sparkplug_broker_password="host-pw",
    )
    host = build_sparkplug_host(own)
    assert host is not None and (host.broker.username, host.broker.password) == ("iot-host", "host-pw")
    shared = build_sparkplug_host(Settings(_env_file=None, sparkplug=True, broker_url="mqtt://iot-ingest@127.0.0.1:1"))
    assert shared is not None and shared.broker.username == "iot-ingest"

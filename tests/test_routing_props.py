"""Property tests of the pure Router with the real Decoder: whatever arrives, every delivery ends
in exactly one batch (time series, documents, registry or dead letters), its token appears exactly
once, tokens leave each destination in arrival order, and nothing is raised."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.directory import DeviceDirectory
from core.model import DeadLetter, Document, Point, Reason, StatusChange
from ingest.decoding.decode import Decoder
from ingest.routing import DEADLETTERS, DOCUMENTS, REGISTRY, TIMESERIES, Batch, Router

NOW_NS = 1_764_038_400_000_000_000
PROPS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)


@dataclass(frozen=True)
class Info:
    id: str
    type: str
    site: str | None
    status: str
    gateway: str | None = None


DIRECTORY = {
    "dev-ok": Info("dev-ok", "thermo", "lab", "active"),
    "dev-nosite": Info("dev-nosite", "meter", None, "active"),
    "dev-off": Info("dev-off", "thermo", "lab", "disabled"),
    "dev-old": Info("dev-old", "thermo", None, "retired"),
}
DEVICES = [*DIRECTORY, "dev-new", "x" * 64, "x" * 65, "", "bad/id", "bad id"]
KINDS = ["telemetry", "metrics", "events", "config", "firmware", "maintenance", "status", "diagnostics", ""]
ITEM_TYPES = {TIMESERIES: Point, DOCUMENTS: Document, REGISTRY: StatusChange, DEADLETTERS: DeadLetter}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=8),
    st.sampled_from(["online", "offline", "info", "error", "2025-11-25T02:40:00Z", 1764038400123, 10**20]),
)
objects = st.dictionaries(
    st.sampled_from(
        ["ts", "temperature", "level", "code", "message", "status", "n", "v", "bn", "bt", "t", "u", "vs", "time", ""]
    ),
    scalars,
    max_size=5,
)
structured = st.one_of(objects, st.lists(objects, max_size=4), scalars)
payloads = st.one_of(
    structured.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=60),
    st.sampled_from(
        [
            b"online",
            b"OFFLINE",
            b'{"temperature": 21.5}',
            b'{"ts": 1764038400123, "x": 1}',
            b'[{"bn": "d:", "n": "t", "v": 1}, {"n": "h", "v": 2}]',
            b'{"level": "info", "code": 7}',
            b'{"fw": "1.2.3"}',
            b"\xff\xfe",
            b"NaN",
            b'{"v": Infinity}',
        ]
    ),
)
topics = st.one_of(
    st.builds(
        lambda r, d, k: f"{r}/{d}/{k}",
        st.sampled_from(["devices", "other"]),
        st.sampled_from(DEVICES),
        st.sampled_from(KINDS),
    ),
    st.text(max_size=20),
)
# a step is a delivery (topic, payload) or the clock moving on by some seconds
steps = st.lists(st.one_of(st.tuples(topics, payloads), st.floats(0.0, 3.0)), max_size=60)


def run(steps: list[Any], batch_size: int, policy: str) -> tuple[list[Batch], int, Counter[str]]:
    counts: defaultdict[tuple[str, str], int] = defaultdict(int)
    router = Router(
        Decoder(future_window_s=300.0),
        batch_size=batch_size,
        flush_interval=1.0,
        directory=DeviceDirectory.of(DIRECTORY),
        policy=policy,  # type: ignore[arg-type]
        counts=counts,
    )
    out: list[Batch] = []
    now_ns = NOW_NS
    deliveries = 0
    for step in steps:
        if isinstance(step, float):
            now_ns += int(step * 1e9)
            out.extend(router.due(now_ns / 1e9))
            continue
        topic, payload = step
        full = router.handle(topic, payload, deliveries, now_ns)
        deliveries += 1
        if full is not None:
            out.append(full)
    out.extend(router.drain())
    assert not router.buffers
    outcomes: Counter[str] = Counter()
    for (_, outcome), n in counts.items():
        outcomes[outcome] += n
    return out, deliveries, outcomes


@PROPS
@given(steps=steps, batch_size=st.integers(1, 8), policy=st.sampled_from(["accept", "reject", "register"]))
def test_every_delivery_lands_in_exactly_one_batch(steps: list[Any], batch_size: int, policy: str) -> None:
    batches, deliveries, outcomes = run(steps, batch_size, policy)
    tokens = [t for b in batches for t in b.tokens]
    assert sorted(tokens) == list(range(deliveries))  # each exactly once
    assert sum(b.messages for b in batches) == deliveries
    assert sum(outcomes.values()) == deliveries  # one accounting outcome per delivery
    assert outcomes["dead_lettered"] == sum(len(b.items) for b in batches if b.dest == DEADLETTERS)
    for dest in (TIMESERIES, DOCUMENTS, REGISTRY, DEADLETTERS):
        seq = [t for b in batches if b.dest == dest for t in b.tokens]
        assert seq == sorted(seq), dest  # order kept per destination
    for b in batches:
        assert all(type(item) is ITEM_TYPES[b.dest] for item in b.items), b.dest
        assert len(b.tokens) == b.messages
        if b.dest in (TIMESERIES, DOCUMENTS):
            assert len(b.origins) == len(b.items)
        if b.dest != REGISTRY:
            assert b.items or not b.tokens


@PROPS
@given(steps=steps, policy=st.sampled_from(["accept", "reject", "register"]))
def test_directory_policy_is_applied(steps: list[Any], policy: str) -> None:
    batches, _, _ = run(steps, 4, policy)
    for b in batches:
        if b.dest == DEADLETTERS:
            continue
        for item in b.items:
            device = item.device_id
            assert device not in ("dev-off", "dev-old")  # disabled and retired never get through
            if policy == "reject":
                assert device in DIRECTORY
            if b.dest == TIMESERIES and device in DIRECTORY:
                info = DIRECTORY[device]
                assert item.tags.get("device_type") == info.type
                assert item.tags.get("site") == info.site
    for b in batches:
        if b.dest == DEADLETTERS:
            for letter in b.items:
                assert letter.reason in set(Reason)
                assert letter.device_id is None or len(letter.device_id) <= 64
    registered = {d for b in batches if b.dest == REGISTRY and b.activity for d in b.activity.register}
    if policy != "register":
        assert not registered
    assert not registered & set(DIRECTORY)


@PROPS
@given(payload=payloads, kind=st.sampled_from(KINDS))
def test_dead_letter_keeps_the_raw_message(payload: bytes, kind: str) -> None:
    topic = f"devices/dev-ok/{kind}"
    [batch] = [b for b in run([(topic, payload)], 1, "accept")[0] if b.items]  # not the last-seen batch
    if batch.dest == DEADLETTERS:
        [letter] = batch.items
        assert (letter.topic, letter.payload, letter.device_id) == (topic, payload, "dev-ok")
        assert letter.received_at == NOW_NS / 1e9
    else:
        assert {o[:2] for o in batch.origins} <= {(topic, payload)}

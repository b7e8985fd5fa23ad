"""Issue 7 item 9: a payload beyond the size limit is dead-lettered as a bounded prefix plus its
original size and SHA-256, never whole (three 20 MiB messages made three 20 MiB rows)."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from sqlalchemy import text

from core.model import LETTER_PREFIX_BYTES, DeadLetter, Reason
from ingest.routing import DEADLETTERS, Router
from registry.db import make_engine, migrate
from registry.deadletters import DeadLetterStore, replay
from tests.daemon_proc import DaemonProcess
from tests.faultkit import publish_raw
from tests.keyed_cli import migrated_registry_url
from tests.servers import Mosquitto, wait_for

MiB = 1 << 20
T0 = 1_764_000_000.0


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return migrated_registry_url(request, tmp_path)


@pytest.fixture
def store(registry_url: str) -> Iterator[DeadLetterStore]:
    s = DeadLetterStore(make_engine(registry_url))
    s.connect()
    yield s
    s.engine.dispose()


def test_bounded_keeps_small_payloads_whole_and_large_ones_as_prefix_size_hash() -> None:
    small = DeadLetter.bounded("invalid_json", "devices/d/telemetry", b"{x", T0, limit=10)
    assert (small.payload, small.original_size, small.sha256, small.truncated) == (b"{x", None, None, False)
    big = b"A" * (5 * LETTER_PREFIX_BYTES)
    letter = DeadLetter.bounded("oversize", "devices/d/telemetry", big, T0, limit=len(big) - 1)
    assert letter.payload == big[:LETTER_PREFIX_BYTES] and letter.truncated
    assert (letter.original_size, letter.sha256) == (len(big), hashlib.sha256(big).hexdigest())
    tiny_limit = DeadLetter.bounded("oversize", "t", big, T0, limit=100)
    assert len(tiny_limit.payload) == 100


def test_router_dead_letters_an_oversize_payload_bounded() -> None:
    from ingest.decoding.decode import Decoder

    router = Router(Decoder(max_payload_bytes=1024), batch_size=1, flush_interval=1.0, max_letter_bytes=1024)
    payload = b'{"x": "' + b"y" * (3 * MiB) + b'"}'
    batch = router.handle("devices/d1/telemetry", payload, None, int(T0 * 1e9))
    assert batch is not None and batch.dest == DEADLETTERS
    [letter] = batch.items
    assert letter.reason == Reason.OVERSIZE and letter.device_id == "d1"
    assert len(letter.payload) == 1024 and batch.nbytes == 1024
    assert letter.original_size == len(payload) and letter.sha256 == hashlib.sha256(payload).hexdigest()


def test_store_keeps_size_and_hash_and_keys_by_the_whole_payload(store: DeadLetterStore) -> None:
    one = b"P" * (2 * LETTER_PREFIX_BYTES) + b"1"
    two = b"P" * (2 * LETTER_PREFIX_BYTES) + b"2"  # same prefix, another message
    letters = [
        DeadLetter.bounded("oversize", "devices/d/telemetry", p, T0, limit=LETTER_PREFIX_BYTES) for p in (one, two)
    ]
    store.write(letters)
    store.write(letters[:1])  # redelivered: same row
    rows = sorted(store.list(), key=lambda r: r.payload_sha256 or "")
    assert len(rows) == 2
    for row, original in zip(rows, sorted((one, two), key=lambda p: hashlib.sha256(p).hexdigest()), strict=True):
        assert row.payload == original[:LETTER_PREFIX_BYTES] and row.truncated
        assert (row.original_size, row.payload_sha256) == (len(original), hashlib.sha256(original).hexdigest())
        d = row.as_dict()
        assert (d["payload_bytes"], d["original_bytes"], d["truncated"]) == (LETTER_PREFIX_BYTES, len(original), True)
    whole = DeadLetter("invalid_json", "devices/d/telemetry", b"{", T0)
    store.write([whole])
    [w] = [r for r in store.list() if not r.truncated]
    assert (w.original_size, w.as_dict()["original_bytes"]) == (None, 1)


def test_replay_skips_truncated_letters(store: DeadLetterStore) -> None:
    store.write(
        [
            DeadLetter.bounded("oversize", "devices/d/telemetry", b"Z" * 9000, T0, limit=100),
            DeadLetter("invalid_json", "devices/d/telemetry", b"{", T0),
        ]
    )
    sent: list[tuple[str, bytes]] = []

    def publish(msgs: Sequence[tuple[str, bytes]]) -> list[bool]:
        sent.extend(msgs)
        return [True] * len(msgs)

    assert replay(store, store.ids(), publish) == 1
    assert sent == [("devices/d/telemetry", b"{")]
    [pending] = store.list(replayed=False)
    assert pending.truncated


@pytest.mark.mosquitto
@pytest.mark.postgres
def test_a_20_mib_message_stores_at_most_the_bound(
    tmp_path: Path, mosquitto_server: Mosquitto, postgres_url: str
) -> None:
    migrate(postgres_url)
    root = "big" + uuid.uuid4().hex[:6]
    limit = 64 * 1024
    daemon = DaemonProcess.on_root(
        tmp_path / "daemon", mosquitto_server.url, root, registry=postgres_url, IOT_MAX_PAYLOAD_BYTES=str(limit)
    ).start()
    huge = [json.dumps({"x": chr(97 + i) * (20 * MiB)}).encode() for i in range(3)]
    try:
        publish_raw(mosquitto_server.url, [(f"{root}/d{i}/telemetry", p) for i, p in enumerate(huge)])
        store = DeadLetterStore(make_engine(postgres_url))
        wait_for(lambda: store.count() == 3, 60, "three oversize dead letters")
    finally:
        assert daemon.terminate() == 0
    with store.engine.connect() as conn:
        sizes = conn.execute(text("SELECT max(octet_length(payload)), sum(octet_length(payload)) FROM dead_letters"))
        biggest, total = sizes.one()
    assert biggest <= limit and total <= 3 * limit
    for row in store.list():
        i = int(row.device_id[1:])  # type: ignore[index]
        assert row.reason == "oversize" and row.truncated
        assert (row.original_size, row.payload_sha256) == (len(huge[i]), hashlib.sha256(huge[i]).hexdigest())
        assert row.payload == huge[i][: len(row.payload)]
    store.engine.dispose()

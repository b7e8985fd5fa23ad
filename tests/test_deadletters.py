"""DeadLetterStore on SQLite and PostgreSQL; `iot deadletters` end to end, replay via mosquitto."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core.model import DeadLetter
from core.stores import StoreUnavailable
from registry.db import make_engine, migrate
from registry.deadletters import DeadLetterStore, replay
from tests.servers import Mosquitto, free_port, wait_for

T0 = 1_764_038_400.0  # 2025-11-25T02:40:00Z


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="db=sqlite"),
        pytest.param("postgres", id="db=postgresql", marks=pytest.mark.postgres),
    ]
)
def registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_url")
    migrate(url)
    return url


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'registry.sqlite3'}"
    migrate(url)
    return url


def _open(url: str) -> Iterator[DeadLetterStore]:
    engine = make_engine(url)
    store = DeadLetterStore(engine)
    store.connect()
    yield store
    engine.dispose()


@pytest.fixture
def store(registry_url: str) -> Iterator[DeadLetterStore]:
    yield from _open(registry_url)


def letter(
    reason: str,
    at: float,
    device: str | None = "dev-1",
    payload: bytes | None = None,
    topic: str | None = None,
    detail: str = "",
) -> DeadLetter:
    topic = topic or f"devices/{device or 'x'}/telemetry"
    payload = payload if payload is not None else f"{{bad {reason} {at}".encode()
    return DeadLetter(reason, topic, payload, at, detail, device)


# --- the store -----------------------------------------------------------------------------------


def test_redelivered_message_updates_its_row_instead_of_adding_one(store: DeadLetterStore) -> None:
    first = letter("invalid_json", T0, payload=b"{same")
    store.write([first, letter("invalid_json", T0 + 1, payload=b"{same")])  # duplicate inside a batch
    [row] = store.list()
    store.mark_replayed([row.id])
    store.write([letter("oversize", T0 + 2, payload=b"{same")])  # redelivered / failed again after replay
    [again] = store.list()
    assert (again.id, again.reason, again.replayed_at) == (row.id, "oversize", None)
    store.write([letter("invalid_json", T0 + 3, payload=b"{other")])
    assert store.count() == 2


def test_write_list_get_round_trip(store: DeadLetterStore) -> None:
    raw = b"\xff\xfe\x00 not utf-8"
    store.write([letter("invalid_utf8", T0 + 0.25, payload=raw, detail="byte 0xff at 0")])
    [got] = store.list()
    assert got.payload == raw and got.reason == "invalid_utf8" and got.device_id == "dev-1"
    assert got.topic == "devices/dev-1/telemetry" and got.detail == "byte 0xff at 0"
    assert got.received_at == datetime.fromtimestamp(T0 + 0.25, UTC)
    assert got.replayed_at is None
    assert store.get(got.id) == got
    assert store.get(got.id + 1000) is None
    assert got.payload_text() == (base64.b64encode(raw).decode(), "base64")


def test_list_newest_first_with_filters(store: DeadLetterStore) -> None:
    store.write([letter("invalid_json", T0, "a"), letter("oversize", T0 + 10, "b")])
    store.write([letter("invalid_json", T0 + 20, "b"), letter("invalid_json", T0 + 5, None)])
    assert [(d.reason, d.device_id) for d in store.list()] == [
        ("invalid_json", "b"),
        ("oversize", "b"),
        ("invalid_json", None),
        ("invalid_json", "a"),
    ]
    assert [d.device_id for d in store.list(reason="invalid_json")] == ["b", None, "a"]
    assert [d.reason for d in store.list(device_id="b")] == ["invalid_json", "oversize"]
    since = datetime.fromtimestamp(T0 + 5, UTC)
    assert len(store.list(since=since)) == 3
    assert len(store.list(since=since.astimezone(timezone_plus_2()))) == 3
    assert len(store.list(limit=2)) == 2
    assert store.count() == 4 and store.count(reason="invalid_json") == 3
    assert store.count(reason="nope") == 0


def timezone_plus_2() -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=2))


def test_mark_replayed_and_replayed_filter(store: DeadLetterStore) -> None:
    store.write([letter("invalid_json", T0 + i) for i in range(3)])
    first, second, third = sorted(d.id for d in store.list())
    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert store.mark_replayed([first, third, 99999], at=at) == 2
    assert store.mark_replayed([]) == 0
    assert [d.id for d in store.list(replayed=False)] == [second]
    assert sorted(d.id for d in store.list(replayed=True)) == [first, third]
    replayed = store.get(first)
    assert replayed is not None and replayed.replayed_at == at
    assert store.ids(replayed=False) == [second]
    assert store.ids() == [first, second, third]
    assert store.count(replayed=True) == 2
    assert [d.id for d in store.get_many([third, first, 424242])] == [first, third]


def test_awkward_text_is_stored_not_refused(store: DeadLetterStore) -> None:
    weird = DeadLetter("bad_topic", "devices/\x00\udcff/x", b"p", T0, "nul \x00 here", "d" * 65)
    store.write([weird, letter("invalid_json", T0 + 1)])
    got = {d.reason: d for d in store.list()}
    assert got["bad_topic"].topic == "devices/\\x00\\udcff/x"
    assert got["bad_topic"].detail == "nul \\x00 here"
    assert got["bad_topic"].device_id is None  # longer than a device id may be
    assert got["invalid_json"].device_id == "dev-1"


def test_write_is_one_transaction(store: DeadLetterStore) -> None:
    store.write([])
    store.write([letter("oversize", T0 + i, payload=b"x" * 1000 + str(i).encode()) for i in range(250)])
    assert store.count(reason="oversize") == 250


def test_replay_marks_only_acknowledged(store: DeadLetterStore) -> None:
    store.write([letter("invalid_json", T0 + i, payload=bytes([i])) for i in range(5)])
    ids = store.ids()
    sent: list[tuple[str, bytes]] = []

    def publish(msgs: Any) -> list[bool]:
        sent.extend(msgs)
        return [m[1] != bytes([2]) for m in msgs]  # the broker refuses one

    assert replay(store, ids, publish, chunk=2) == 4
    assert [p for _, p in sent] == [bytes([i]) for i in range(5)]
    assert [d.payload for d in store.get_many(store.ids(replayed=False))] == [bytes([2])]


def test_unreachable_database_raises_store_unavailable() -> None:
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nope")
    store = DeadLetterStore(engine)
    with pytest.raises(StoreUnavailable):
        store.write([letter("invalid_json", T0)])
    with pytest.raises(StoreUnavailable):
        store.list()
    engine.dispose()


# --- the CLI ---------------------------------------------------------------------------------------


def iot(cwd: Path, url: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("IOT_")}
    full_env.update(IOT_REGISTRY_URL=url, IOT_DATA_DIR=str(cwd / "data"), COLUMNS="200", **env)
    return subprocess.run(
        [sys.executable, "-c", "from iot.cli import main; main()", "deadletters", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_list_empty_and_table(tmp_path: Path, sqlite_url: str) -> None:
    done = iot(tmp_path, sqlite_url, "list")
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, "no dead letters", "")
    for store in _open(sqlite_url):
        store.write([letter("invalid_json", T0, "dev-9", payload=b'[{"n":"[/x]"}\n' + b"y" * 80)])
        store.write([letter("oversize", T0 + 1, "dev-8")])
    done = iot(tmp_path, sqlite_url, "list", "--reason", "invalid_json")
    assert done.returncode == 0, done.stderr
    assert "dev-9" in done.stdout and "dev-8" not in done.stdout
    assert '[{"n":"[/x]"}\\n' in done.stdout and "…" in done.stdout
    assert "2025-11-25T02:40:00Z" in done.stdout


def test_cli_list_json_and_since(tmp_path: Path, sqlite_url: str) -> None:
    now = datetime.now(UTC).timestamp()
    for store in _open(sqlite_url):
        store.write([letter("invalid_json", now - 7200, "old"), letter("no_fields", now - 60, "new", b"{bad")])
    done = iot(tmp_path, sqlite_url, "list", "--json", "--since", "1h")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [(r["device_id"], r["reason"], r["payload_preview"]) for r in rows] == [("new", "no_fields", "{bad")]
    assert (
        json.loads(iot(tmp_path, sqlite_url, "list", "--json", "--device", "old").stdout)[0]["reason"] == "invalid_json"
    )
    done = iot(tmp_path, sqlite_url, "list", "--since", "yesterday")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "duration" in done.stderr


def test_cli_show_text_binary_json_and_unknown(tmp_path: Path, sqlite_url: str) -> None:
    for store in _open(sqlite_url):
        store.write([letter("invalid_json", T0, payload=b'{"t": 1,,}')])
        store.write([letter("invalid_utf8", T0 + 1, payload=b"\xc3\x28")])
        text_id, bin_id = store.ids()
    done = iot(tmp_path, sqlite_url, "show", str(text_id))
    assert done.returncode == 0, done.stderr
    assert done.stdout.rstrip().endswith('{"t": 1,,}') and "invalid_json" in done.stdout
    shown = json.loads(iot(tmp_path, sqlite_url, "show", str(bin_id), "--json").stdout)
    assert shown["payload_encoding"] == "base64"
    assert base64.b64decode(shown["payload"]) == b"\xc3\x28"
    done = iot(tmp_path, sqlite_url, "show", "9999")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.strip() == "error: no dead letter with id 9999"


def test_cli_on_unmigrated_registry_is_one_line(tmp_path: Path) -> None:
    done = iot(tmp_path, f"sqlite:///{tmp_path / 'empty.sqlite3'}", "list")
    assert done.returncode == 2 and done.stderr.count("\n") == 1 and "migrate" in done.stderr


def test_cli_replay_usage_errors(tmp_path: Path, sqlite_url: str) -> None:
    done = iot(tmp_path, sqlite_url, "replay", "--all")
    assert done.returncode == 2 and "running broker" in done.stderr
    assert done.stderr.count("\n") == 1
    done = iot(tmp_path, sqlite_url, "replay", "--broker", "mqtt://127.0.0.1:1")
    assert done.returncode == 2 and "--reason R or --all" in done.stderr
    done = iot(tmp_path, sqlite_url, "replay", "5", "--broker", "mqtt://127.0.0.1:1")
    assert done.returncode == 1 and "no dead letter with id 5" in done.stderr


class Subscriber:
    """A paho client that records (topic, payload) of everything under ``pattern``."""

    def __init__(self, broker: Mosquitto, pattern: str) -> None:
        self.got: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"t-{uuid.uuid4().hex[:8]}")
        self.client.on_connect = lambda c, *_: c.subscribe(pattern, qos=1)
        self.client.on_subscribe = lambda *_: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        wait_for(self.subscribed.is_set, 10, "SUBACK")

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.got.append((msg.topic, bytes(msg.payload)))

    def messages(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return list(self.got)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.mark.mosquitto
def test_cli_replay_republishes_exact_bytes(tmp_path: Path, sqlite_url: str, mosquitto_server: Mosquitto) -> None:
    ns = uuid.uuid4().hex[:8]
    raw = [b"\xff\x00binary", b'{"temperature": NaN}', b"x" * 70000]
    letters = [
        letter("invalid_utf8", T0, f"{ns}-a", payload=raw[0], topic=f"t{ns}/devices/{ns}-a/telemetry"),
        letter("non_finite", T0 + 1, f"{ns}-b", payload=raw[1], topic=f"t{ns}/devices/{ns}-b/metrics"),
        letter("oversize", T0 + 2, f"{ns}-c", payload=raw[2], topic=f"t{ns}/devices/{ns}-c/events"),
    ]
    for store in _open(sqlite_url):
        store.write(letters)
        ids = store.ids()
    sub = Subscriber(mosquitto_server, f"t{ns}/#")
    try:
        done = iot(tmp_path, sqlite_url, "replay", "--reason", "non_finite", "--broker", mosquitto_server.url)
        assert done.returncode == 0, done.stderr
        assert "replayed 1 of 1" in done.stdout
        wait_for(lambda: len(sub.messages()) == 1, 10, "one replayed message")
        assert sub.messages() == [(letters[1].topic, raw[1])]

        done = iot(tmp_path, sqlite_url, "replay", str(ids[0]), str(ids[2]), "--broker", mosquitto_server.url)
        assert done.returncode == 0, done.stderr
        assert "replayed 2 of 2" in done.stdout
        wait_for(lambda: len(sub.messages()) == 3, 10, "three replayed messages")
        assert sorted(sub.messages()) == sorted((d.topic, d.payload) for d in letters)

        done = iot(tmp_path, sqlite_url, "replay", "--all", "--broker", mosquitto_server.url)
        assert (done.returncode, done.stdout.strip()) == (0, "no dead letters to replay")
    finally:
        sub.close()
    for store in _open(sqlite_url):
        assert all(d.replayed_at is not None for d in store.list())


def test_cli_replay_unreachable_broker_marks_nothing(tmp_path: Path, sqlite_url: str) -> None:
    for store in _open(sqlite_url):
        store.write([letter("invalid_json", T0)])
    done = iot(tmp_path, sqlite_url, "replay", "--all", "--broker", f"mqtt://127.0.0.1:{free_port()}")
    assert done.returncode == 1 and done.stderr.count("\n") == 1 and "unreachable" in done.stderr
    for store in _open(sqlite_url):
        assert store.count(replayed=True) == 0

"""MongoDocumentStore against the embedded engine (montydb on disk) and a real MongoDB."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from core.model import COLLECTIONS, Document, Kind
from core.stores import StoreConfigError, StoreUnavailable
from ingest.stores import open_documents
from ingest.stores.mongo import MongoDocumentStore, body_problem
from tests.servers import free_port

CONFIGS = COLLECTIONS[Kind.CONFIG]
FIRMWARE = COLLECTIONS[Kind.FIRMWARE]
MAINTENANCE = COLLECTIONS[Kind.MAINTENANCE]

Opener = Callable[[], MongoDocumentStore]


def _fresh_mongodb(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/t_" + uuid.uuid4().hex[:12]))


@pytest.fixture(
    params=[
        pytest.param("embedded", id="engine=embedded-montydb"),
        pytest.param("mongodb", id="engine=mongodb-server", marks=pytest.mark.mongodb),
    ]
)
def opener(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Opener]:
    """Opens (and connects) a store; every call reaches the same data, so tests can reopen."""
    opened: list[MongoDocumentStore] = []
    embedded = request.param == "embedded"
    url = "embedded" if embedded else _fresh_mongodb(request.getfixturevalue("mongodb_url"))

    def open_store() -> MongoDocumentStore:
        store = open_documents(url, data_dir=tmp_path / "data" if embedded else None)
        assert isinstance(store, MongoDocumentStore)
        store.connect()
        opened.append(store)
        return store

    yield open_store
    for store in opened:
        store.close()
    if request.param == "mongodb":
        import pymongo

        client: pymongo.MongoClient[dict[str, Any]]
        with pymongo.MongoClient(url, serverSelectionTimeoutMS=3000) as client:
            client.drop_database(client.get_default_database())


@pytest.fixture
def store(opener: Opener) -> MongoDocumentStore:
    return opener()


def doc(collection: str, device: str, key: str, at: float = 1_764_038_400.0, **body: Any) -> Document:
    return Document(collection, device, key, body or {"n": key}, at)


def test_write_and_read_back(store: MongoDocumentStore) -> None:
    assert store.write([doc(FIRMWARE, "dev-1", "k1", 1_764_038_400.5, fw="1.2.3", ok=True)]) == []
    got = store.find(FIRMWARE, "dev-1")
    assert len(got) == 1
    d = got[0]
    assert d["_id"] == "k1"
    assert d["device_id"] == "dev-1"
    assert d["fw"] == "1.2.3" and d["ok"] is True
    assert d["received_at"] == datetime(2025, 11, 25, 2, 40, 0, 500_000, tzinfo=UTC)
    assert d["received_at"].utcoffset().total_seconds() == 0
    assert "version" not in d


def test_nested_body_round_trips(store: MongoDocumentStore) -> None:
    body = {"net": {"wifi": {"ssid": "x", "channels": [1, 6, 11]}}, "limits": [{"min": -1.5}]}
    store.write([Document(CONFIGS, "dev-1", "k1", body, 1.0)])
    latest = store.latest(CONFIGS, "dev-1")
    assert latest is not None
    assert latest["net"] == body["net"] and latest["limits"] == body["limits"]


def test_config_versions_increase_per_device(store: MongoDocumentStore) -> None:
    store.write([doc(CONFIGS, "a", "a1"), doc(CONFIGS, "b", "b1"), doc(CONFIGS, "a", "a2")])
    store.write([doc(CONFIGS, "a", "a3")])
    assert [d["version"] for d in store.find(CONFIGS, "a")] == [3, 2, 1]
    assert [d["_id"] for d in store.find(CONFIGS, "a")] == ["a3", "a2", "a1"]
    assert [d["version"] for d in store.find(CONFIGS, "b")] == [1]


def test_redelivery_stores_nothing_and_burns_no_version(store: MongoDocumentStore) -> None:
    batch = [doc(CONFIGS, "a", "a1"), doc(CONFIGS, "a", "a2"), doc(FIRMWARE, "a", "f1")]
    assert store.write(batch) == []
    assert store.write(batch) == []
    assert store.count(CONFIGS) == 2 and store.count(FIRMWARE) == 1
    store.write([doc(CONFIGS, "a", "a2"), doc(CONFIGS, "a", "a3")])  # half redelivered
    assert [d["version"] for d in store.find(CONFIGS, "a")] == [3, 2, 1]


def test_duplicate_keys_inside_one_batch(store: MongoDocumentStore) -> None:
    first = Document(CONFIGS, "a", "same", {"v": "first"}, 1.0)
    again = Document(CONFIGS, "a", "same", {"v": "second"}, 2.0)
    assert store.write([first, again, doc(CONFIGS, "a", "other")]) == []
    assert store.count(CONFIGS, "a") == 2
    kept = {d["_id"]: d for d in store.find(CONFIGS, "a")}
    assert kept["same"]["v"] == "first" and kept["same"]["version"] == 1
    assert kept["other"]["version"] == 2


def test_unstorable_bodies_are_rejected_with_a_reason(store: MongoDocumentStore) -> None:
    good = doc(MAINTENANCE, "a", "ok")
    dollar = Document(MAINTENANCE, "a", "d", {"$set": {"x": 1}}, 1.0)
    nested = Document(MAINTENANCE, "a", "n", {"a": [{"$where": "1"}]}, 1.0)
    dotted = Document(MAINTENANCE, "a", "p", {"fw.version": "1"}, 1.0)
    huge = Document(MAINTENANCE, "a", "h", {"n": 1 << 64}, 1.0)
    rejected = store.write([dollar, good, nested, dotted, huge])
    reasons = {d.key: why for d, why in rejected}
    assert set(reasons) == {"d", "n", "p", "h"}
    assert "'$set'" in reasons["d"] and "'a[0].$where'" in reasons["n"]
    assert "'.'" in reasons["p"] and "64 bits" in reasons["h"]
    assert [d["_id"] for d in store.find(MAINTENANCE)] == ["ok"]


def test_body_id_and_version_are_kept_under_other_names(store: MongoDocumentStore) -> None:
    store.write([Document(CONFIGS, "a", "k", {"_id": "cfg-7", "version": "v2", "x": 1}, 1.0)])
    got = store.latest(CONFIGS, "a")
    assert got is not None
    assert got["_id"] == "k" and got["device_doc_id"] == "cfg-7"
    assert got["version"] == 1 and got["device_version"] == "v2"


def test_find_newest_first_latest_and_count(store: MongoDocumentStore) -> None:
    store.write([doc(FIRMWARE, "a", f"a{i}", 1000.0 + i) for i in (2, 0, 1)])
    store.write([doc(FIRMWARE, "b", "b0", 999.0), doc(FIRMWARE, "b", "b1", 2000.0)])
    assert [d["_id"] for d in store.find(FIRMWARE, "a")] == ["a2", "a1", "a0"]
    assert [d["_id"] for d in store.find(FIRMWARE)] == ["b1", "a2", "a1", "a0", "b0"]
    assert [d["_id"] for d in store.find(FIRMWARE, limit=2)] == ["b1", "a2"]
    latest = store.latest(FIRMWARE, "a")
    assert latest is not None and latest["_id"] == "a2"
    assert store.latest(FIRMWARE, "nobody") is None
    assert store.latest(CONFIGS, "a") is None
    assert store.count(FIRMWARE) == 5
    assert (store.count(FIRMWARE, "a"), store.count(FIRMWARE, "zz")) == (3, 0)


def test_unknown_collection(store: MongoDocumentStore) -> None:
    bad = Document("nope", "a", "k", {"x": 1}, 1.0)
    assert [why for _, why in store.write([bad])] == ["unknown collection 'nope'"]
    with pytest.raises(ValueError, match="unknown collection"):
        store.find("nope")


def test_reopen_after_close_keeps_data_and_versions(opener: Opener) -> None:
    first = opener()
    first.write([doc(CONFIGS, "a", "a1"), doc(CONFIGS, "a", "a2"), doc(FIRMWARE, "a", "f1")])
    first.close()
    second = opener()
    assert second.count(CONFIGS, "a") == 2 and second.count(FIRMWARE) == 1
    assert second.write([doc(CONFIGS, "a", "a2"), doc(CONFIGS, "a", "a3")]) == []
    assert [d["version"] for d in second.find(CONFIGS, "a")] == [3, 2, 1]


def test_embedded_files_live_under_data_dir(tmp_path: Path) -> None:
    store = open_documents("embedded", data_dir=tmp_path)
    store.connect()
    store.write([doc(FIRMWARE, "a", "k")])
    store.close()
    assert (tmp_path / "documents" / ".monty.storage").read_text().strip() == "sqlite"
    assert list((tmp_path / "documents").rglob("firmware.collection"))
    other = open_documents(f"montydb://{tmp_path / 'documents'}")
    other.connect()
    assert other.count(FIRMWARE) == 1
    other.close()


def test_mongodb_url_parsing_and_unreachable_server() -> None:
    with pytest.raises(StoreConfigError):
        MongoDocumentStore.from_url("montydb://")
    store = MongoDocumentStore.from_url(f"mongodb://user:s3cret@127.0.0.1:{free_port()}/fleet")
    assert store.location.endswith("127.0.0.1/fleet") and "s3cret" not in store.location
    with pytest.raises(StoreUnavailable) as e:
        store.connect()
    assert "s3cret" not in str(e.value)
    store.close()


def test_body_problem_accepts_plain_json() -> None:
    assert body_problem({"a": [1, 2.5, "x", None, True, {"b": -(1 << 63)}]}) is None

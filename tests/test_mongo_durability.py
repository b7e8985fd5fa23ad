"""MongoDB acknowledges only what it has kept (issue 10, item 2): journaled writes by default
(``w: majority`` configurable for replica sets), write-concern errors are failures (the batch is
retried, never counted stored), the server's refusals are mapped once, and the indexes the CLI's
queries need exist. The write-concern and index checks that need a server run against a real
MongoDB (IOT_TEST_MONGODB_URL); the embedded engine has neither write concerns nor indexes."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pymongo
import pymongo.errors
import pytest

from core.config import Settings
from core.model import COLLECTIONS, Document, Kind
from core.stores import StoreNeedsOperator, StoreUnavailable
from ingest.stores import documents_from
from ingest.stores.mongo import MongoDocumentStore
from tests.servers import free_port

FIRMWARE = COLLECTIONS[Kind.FIRMWARE]
CONFIGS = COLLECTIONS[Kind.CONFIG]


def store_for(url: str, **settings: Any) -> MongoDocumentStore:
    store = documents_from(Settings(_env_file=None, documents_url=url, **settings))
    assert isinstance(store, MongoDocumentStore)
    return store


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({}, {"w": 1, "j": True}),
        ({"mongodb_w": "majority"}, {"w": "majority", "j": True}),
        ({"mongodb_journal": False}, {"w": 1, "j": False}),
    ],
)
def test_write_concern_is_journaled_by_default(settings: dict[str, Any], expected: dict[str, Any]) -> None:
    store = store_for(f"mongodb://127.0.0.1:{free_port()}/fleet", **settings)
    client = store._open_client()  # pymongo connects lazily: the client's options are what we check
    try:
        assert client.write_concern.document == expected
        assert store._db.write_concern.document == expected  # what every collection inherits
    finally:
        client.close()


def test_bad_write_concern_setting_is_refused() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        Settings(_env_file=None, mongodb_w="all")


def docs(n: int) -> list[Document]:
    return [Document(FIRMWARE, "dev-1", f"k{i}", {"n": i}, 1_764_000_000.0 + i) for i in range(n)]


def test_write_concern_errors_fail_the_batch(tmp_path: Path) -> None:
    """A bulk write whose writeConcernErrors say the data is not kept as asked is not stored."""
    store = MongoDocumentStore("embedded", repository=tmp_path / "docs")
    details = {
        "writeErrors": [],
        "writeConcernErrors": [{"code": 64, "errmsg": "waiting for replication timed out"}],
        "nInserted": 3,
    }
    with pytest.raises(StoreUnavailable, match=r"write concern not satisfied.*code 64") as e:
        store._bulk_failures(docs(3), details)
    assert not isinstance(e.value, StoreNeedsOperator)
    # without them, a duplicate _id is "stored before" and other write errors are refused for good
    rejected = store._bulk_failures(
        docs(3), {"writeErrors": [{"index": 1, "code": 2, "errmsg": "bad"}], "writeConcernErrors": []}
    )
    assert [(d.key, why) for d, why in rejected] == [("k1", "bad")]


@pytest.mark.parametrize(
    ("code", "needs_operator"), [(13, True), (18, True), (8000, True), (11600, False), (50, False)]
)
def test_server_refusals_are_mapped_once(code: int, needs_operator: bool) -> None:
    store = MongoDocumentStore("mongodb", url="mongodb://h/db")
    mapped = store._refused(pymongo.errors.OperationFailure("refused", code=code))
    assert isinstance(mapped, StoreUnavailable)
    assert isinstance(mapped, StoreNeedsOperator) == needs_operator
    assert f"code {code}" in str(mapped) or needs_operator


def _fresh(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/t_" + uuid.uuid4().hex[:12]))


@pytest.mark.mongodb
def test_real_mongodb_indexes_and_journaled_writes(mongodb_url: str) -> None:
    url = _fresh(mongodb_url)
    store = store_for(url)
    store.connect()
    try:
        assert store.write(docs(5)) == []
        assert store.count(FIRMWARE) == 5
        for name in COLLECTIONS.values():
            keys = [list(ix["key"]) for ix in store._db[name].index_information().values()]
            assert ["received_at", "_id"] in keys and ["device_id", "received_at"] in keys
        assert store._db.write_concern.document == {"w": 1, "j": True}
        # a write concern a standalone or small replica set cannot meet fails the batch
        strict = store_for(url, mongodb_w="50")
        with pytest.raises(StoreUnavailable):
            strict.connect()
            strict.write([Document(FIRMWARE, "dev-2", "x1", {"n": 1}, 1.0)])
        strict.close()
    finally:
        client: pymongo.MongoClient[dict[str, Any]]
        with pymongo.MongoClient(url, serverSelectionTimeoutMS=3000) as client:
            client.drop_database(client.get_default_database())
        store.close()

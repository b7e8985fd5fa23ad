"""Document store on MongoDB (pymongo) or, embedded, on montydb with its SQLite storage.

One code path drives both engines: montydb's collections answer the same calls as pymongo's
(``insert_many``, ``find``, ``find_one``, ``count_documents``, ``create_index``). The only
engine-specific parts are building the client and the exception classes each raises.

Stored document: ``{**body, "_id": key, "device_id", "received_at"}`` plus, for configs, a
per-device ``version`` (max stored + 1, in batch order; the daemon is the only writer). A body's
own ``_id`` is kept as ``device_doc_id`` and a config body's own ``version`` as ``device_version``.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from montydb import errors as monty_errors

from core.model import COLLECTIONS, Document, Kind
from core.stores import StoreConfigError, StoreNeedsOperator, StoreUnavailable

if TYPE_CHECKING:
    import pymongo.errors

CONFIGS = COLLECTIONS[Kind.CONFIG]
DEFAULT_DATABASE = "iot"
EMBEDDED_STORAGE = "sqlite"
SERVER_SELECTION_TIMEOUT_MS = 3000
DUPLICATE_KEY = 11000
# OperationFailure codes waiting will not fix: Unauthorized, AuthenticationFailed, UserNotFound,
# RoleNotFound, AtlasError (Atlas: bad credentials or IP not allowed)
_OPERATOR_CODES = frozenset({13, 18, 11, 31, 8000})
Rejects = list[tuple[Document, str]]
_INT64 = (-(1 << 63), (1 << 63) - 1)

_MONTY_TRANSIENT: tuple[type[BaseException], ...] = (
    sqlite3.OperationalError,  # montydb: locked, disk I/O
    sqlite3.IntegrityError,  # montydb: a key written by someone else since our check; retry
    OSError,
)


@dataclass(frozen=True)
class _Raised:
    """What an engine raises: for "cannot reach / cannot write right now", for a bulk write with
    refused documents, and for a server's refusal with a code (pymongo's OperationFailure: montydb,
    which never imports pymongo, raises none)."""

    transient: tuple[type[BaseException], ...]
    bulk: tuple[type[BaseException], ...]
    refused: tuple[type[pymongo.errors.OperationFailure], ...]


def _raised_by(engine: str) -> _Raised:
    if engine == "embedded":  # no pymongo (~40 ms) for the embedded store
        return _Raised(_MONTY_TRANSIENT, (monty_errors.BulkWriteError,), ())
    import pymongo.errors

    return _Raised(
        (
            pymongo.errors.ConnectionFailure,  # AutoReconnect, ServerSelectionTimeoutError, NetworkTimeout
            pymongo.errors.WriteConcernError,
            *_MONTY_TRANSIENT,
        ),
        (pymongo.errors.BulkWriteError, monty_errors.BulkWriteError),
        (pymongo.errors.OperationFailure,),
    )


def _complete_torn_collections(db_dir: Path) -> None:
    """montydb creates a collection's SQLite file, then its table: a crash in between leaves a file
    it takes for the collection ever after, failing every write with "no such table". Create the
    missing table (IF NOT EXISTS: harmless when another process has it, or got there first)."""
    from montydb.storage.sqlite import SQLITE_DB_EXT, SQLITE_RECORD_TABLE

    for path in db_dir.glob(f"*{SQLITE_DB_EXT}"):
        conn = sqlite3.connect(path, timeout=30)
        try:
            with conn:
                conn.execute(
                    f"CREATE TABLE IF NOT EXISTS [{SQLITE_RECORD_TABLE}]"
                    "(k text NOT NULL, v text NOT NULL, PRIMARY KEY(k))"
                )
        finally:
            conn.close()


def body_problem(value: Any, path: str = "") -> str | None:
    """Why MongoDB (or the embedded engine) would refuse this body, or None if it is storable."""
    if isinstance(value, dict):
        for k, v in value.items():
            where = f"{path}.{k}" if path else str(k)
            if not isinstance(k, str):
                return f"field name {where!r} is not a string"
            if k.startswith("$"):
                return f"field name {where!r} starts with '$'"
            if "." in k:
                return f"field name {where!r} contains '.'"
            if "\x00" in k:
                return f"field name {where!r} contains a NUL character"
            problem = body_problem(v, where)
            if problem:
                return problem
    elif isinstance(value, list):
        for i, v in enumerate(value):
            problem = body_problem(v, f"{path}[{i}]")
            if problem:
                return problem
    elif isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
        return f"integer at {path or 'top level'!r} does not fit in 64 bits"
    return None


def _stored(doc: Document) -> dict[str, Any]:
    body = dict(doc.body)
    if "_id" in body:
        body["device_doc_id"] = body.pop("_id")
    if doc.collection == CONFIGS and "version" in body:
        body["device_version"] = body.pop("version")
    body.update(
        _id=doc.key,
        device_id=doc.device_id,
        received_at=datetime.fromtimestamp(doc.received_at, UTC),
    )
    return body


def _duplicate_id(err: dict[str, Any]) -> bool:
    pattern = err.get("keyPattern")
    if pattern is not None:
        return list(pattern) == ["_id"]
    return " index: _id_ " in str(err.get("errmsg", ""))


def _short(e: BaseException) -> str:
    text = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {text[:200]}"


class MongoDocumentStore:
    """DocumentStore over a pymongo ``MongoClient`` or an embedded ``MontyClient``."""

    def __init__(
        self,
        engine: str,
        *,
        url: str = "",
        repository: Path | None = None,
        password: str | None = None,
        w: int | str = 1,
        journal: bool = True,
    ) -> None:
        if engine not in ("mongodb", "embedded"):
            raise StoreConfigError(f"unknown document engine {engine!r}")
        self.engine = engine
        self._raised = _raised_by(engine)
        self._url = url
        self._repository = repository
        self._password = password
        self._write_concern: dict[str, Any] = {"w": w, "journal": journal}
        self._client: Any = None
        self._db: Any = None
        self._indexed = False
        self._versions: dict[str, int] = {}  # device -> highest stored config version
        self._known: dict[str, set[str]] = {}  # embedded only: collection -> stored keys
        self._all_versions = False  # embedded only: _versions holds every device's
        self._lock = threading.RLock()  # montydb's SQLite engine shares one connection slot

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        data_dir: Path | None = None,
        password: str | None = None,
        w: int | str = 1,
        journal: bool = True,
        **_: object,
    ) -> MongoDocumentStore:
        """``password`` (from Settings) is used when the URL names a user but no password;
        ``w``/``journal`` are the write concern (default: acknowledged once journaled)."""
        scheme = "embedded" if url in ("", "embedded") else urlsplit(url).scheme
        if scheme in ("mongodb", "mongodb+srv"):
            return cls("mongodb", url=url, password=password or None, w=w, journal=journal)
        if scheme == "embedded":
            return cls("embedded", repository=(data_dir or Path(".iot-data")) / "documents")
        if scheme == "montydb":
            path = url[len("montydb://") :]
            if not path:
                raise StoreConfigError("montydb:// URL needs a path, e.g. montydb:///var/lib/iot/docs")
            return cls("embedded", repository=Path(path))
        raise StoreConfigError(f"unsupported documents URL scheme {scheme!r}")

    @property
    def location(self) -> str:
        """Where the data lives, without credentials (for logs)."""
        if self.engine == "embedded":
            return f"embedded:{self._repository}"
        parts = urlsplit(self._url)
        return f"{parts.scheme}://{parts.hostname or ''}{parts.path or ''}"

    # lifecycle

    def connect(self) -> None:
        if self._client is None:
            self._client = self._open_client()
        self._ensure_indexes()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = self._db = None
        self._forget()

    def _forget(self) -> None:
        """Drop what we remember of the stored data; it is read again when needed."""
        self._indexed = False
        self._versions.clear()
        self._known.clear()
        self._all_versions = False

    def _open_client(self) -> Any:
        if self.engine == "embedded":
            from montydb import MontyClient, set_storage

            repo = self._repository
            assert repo is not None
            try:
                if not (repo / ".monty.storage").exists():
                    set_storage(str(repo), storage=EMBEDDED_STORAGE, use_bson=False)
                _complete_torn_collections(repo / DEFAULT_DATABASE)
                client = MontyClient(str(repo), tz_aware=True)
            except (OSError, sqlite3.Error) as e:
                raise StoreUnavailable(f"embedded document store at {repo}: {_short(e)}") from e
            self._db = client[DEFAULT_DATABASE]
            return client
        kwargs: dict[str, Any] = {
            "serverSelectionTimeoutMS": SERVER_SELECTION_TIMEOUT_MS,
            "tz_aware": True,
            "appname": "polyglot-iot",
            **self._write_concern,
        }
        if self._password and urlsplit(self._url).username and urlsplit(self._url).password is None:
            kwargs["password"] = self._password
        import pymongo
        import pymongo.errors

        try:
            client = pymongo.MongoClient(self._url, **kwargs)
        except pymongo.errors.ConfigurationError as e:
            raise StoreConfigError(f"invalid MongoDB URL: {_short(e)}") from e
        self._db = client.get_default_database(default=DEFAULT_DATABASE)
        return client

    def _ensure_indexes(self) -> None:
        if self._indexed:
            return
        try:
            for name in COLLECTIONS.values():
                col = self._db[name]
                col.create_index([("device_id", 1), ("received_at", -1)])
                col.create_index([("received_at", -1), ("_id", -1)])  # newest first, all devices
                if name == CONFIGS:
                    col.create_index([("device_id", 1), ("version", -1)], unique=True)
        except self._raised.refused as e:
            raise self._refused(e) from e
        except self._raised.transient as e:
            raise self._unavailable(e) from e
        self._indexed = True

    def _col(self, collection: str) -> Any:
        if collection not in COLLECTIONS.values():
            raise ValueError(f"unknown collection {collection!r}")
        if self._client is None:
            raise RuntimeError("document store is not connected: call connect() first")
        return self._db[collection]

    # writes

    def write(self, docs: Sequence[Document]) -> list[tuple[Document, str]]:
        """Store ``docs`` once each (by key); returns the documents refused for good."""
        rejected: list[tuple[Document, str]] = []
        by_collection: dict[str, list[Document]] = {}
        for doc in docs:
            problem = (
                f"unknown collection {doc.collection!r}"
                if doc.collection not in COLLECTIONS.values()
                else body_problem(doc.body)
            )
            if problem:
                rejected.append((doc, problem))
            else:
                by_collection.setdefault(doc.collection, []).append(doc)
        try:
            with self._lock:
                self._ensure_indexes()
                for collection, batch in by_collection.items():
                    rejected.extend(self._write_collection(collection, batch))
        except self._raised.transient as e:
            self._forget()
            raise self._unavailable(e) from e
        except self._raised.refused as e:  # BulkWriteError is handled per collection
            self._forget()
            raise self._refused(e) from e
        return rejected

    def _write_collection(self, collection: str, docs: list[Document]) -> Rejects:
        col = self._col(collection)
        existing = self._stored_keys(col, collection, list(dict.fromkeys(d.key for d in docs)))
        fresh: list[Document] = []
        for doc in docs:
            if doc.key not in existing:
                existing.add(doc.key)  # later copies in the same batch are duplicates too
                fresh.append(doc)
        if not fresh:
            return []
        stored = [_stored(d) for d in fresh]
        versions: dict[str, int] = {}
        if collection == CONFIGS:
            for s in stored:
                device = s["device_id"]
                if device not in versions:
                    versions[device] = self._stored_version(col, device)
                versions[device] += 1
                s["version"] = versions[device]
        try:
            col.insert_many(stored, ordered=False)
        except self._raised.bulk as e:
            return self._bulk_failures(fresh, getattr(e, "details", None) or {})
        self._versions.update(versions)
        if collection in self._known:
            self._known[collection].update(d.key for d in fresh)
        return []

    def _stored_keys(self, col: Any, collection: str, keys: list[str]) -> set[str]:
        """Which of ``keys`` are stored. montydb answers ``$in`` by comparing every key with
        every document in Python, so the embedded engine reads all keys once and remembers."""
        if self.engine == "embedded":
            if collection not in self._known:
                self._known[collection] = {d["_id"] for d in col.find({}, {"_id": 1})}
            return self._known[collection].intersection(keys)
        return {d["_id"] for d in col.find({"_id": {"$in": keys}}, {"_id": 1})}

    def _stored_version(self, col: Any, device: str) -> int:
        """Highest stored config version of ``device`` (0: none). montydb has no indexes, so
        the embedded engine reads every device's highest version in one scan."""
        if device in self._versions or self._all_versions:
            return self._versions.setdefault(device, 0)
        if self.engine == "embedded":
            for d in col.find({}, {"device_id": 1, "version": 1}):
                v = int(d.get("version", 0))
                if v > self._versions.get(d["device_id"], 0):
                    self._versions[d["device_id"]] = v
            self._all_versions = True
        else:
            top = col.find_one({"device_id": device}, {"version": 1}, sort=[("version", -1)])
            self._versions[device] = int(top["version"]) if top and "version" in top else 0
        return self._versions.setdefault(device, 0)

    def _bulk_failures(self, fresh: list[Document], details: dict[str, Any]) -> Rejects:
        """Sort a bulk write's errors: a duplicate key was stored before (MongoDB went on past
        it; montydb stops there, so retry whole); a version clash means another writer got in
        (retry whole, versions re-read); anything else is refused for good."""
        self._forget()
        concern = details.get("writeConcernErrors") or []
        if concern:  # written, maybe, but not kept as asked (journal, majority): not stored
            first = concern[0]
            raise StoreUnavailable(
                f"{self.location}: write concern not satisfied ({len(concern)} errors; "
                f"code {first.get('code')}: {str(first.get('errmsg', ''))[:200]})"
            )
        rejected: Rejects = []
        for err in details.get("writeErrors", []):
            if err.get("code") == DUPLICATE_KEY:
                if self.engine == "embedded":
                    raise StoreUnavailable(f"{self.location}: key written meanwhile; retry")
                if _duplicate_id(err):
                    continue
                raise StoreUnavailable(f"config version clash in {self.location}: another writer?")
            rejected.append((fresh[err["index"]], str(err.get("errmsg", "refused by the store"))))
        return rejected

    # reads

    def find(self, collection: str, device_id: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Documents newest first (configs of one device: highest version first)."""
        col = self._col(collection)
        with self._reading():
            cursor = col.find(self._filter(device_id)).sort(self._order(collection, device_id))
            return list(self._normalised(cursor.limit(limit)))

    def latest(self, collection: str, device_id: str) -> dict[str, Any] | None:
        found = self.find(collection, device_id, limit=1)
        return found[0] if found else None

    def count(self, collection: str, device_id: str | None = None) -> int:
        col = self._col(collection)
        with self._reading():
            return int(col.count_documents(self._filter(device_id)))

    @contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            with self._lock:
                yield
        except self._raised.transient as e:
            raise self._unavailable(e) from e
        except self._raised.refused as e:
            raise self._refused(e) from e

    def _refused(self, e: pymongo.errors.OperationFailure) -> StoreUnavailable:
        """The one place a server's OperationFailure becomes ours."""
        if e.code in _OPERATOR_CODES:
            return StoreNeedsOperator(f"MongoDB at {self.location} refuses us: {_short(e)}")
        return StoreUnavailable(f"MongoDB at {self.location}: code {e.code}: {_short(e)}")

    def _unavailable(self, e: BaseException) -> StoreUnavailable:
        return StoreUnavailable(f"document store {self.location} unavailable: {_short(e)}")

    @staticmethod
    def _filter(device_id: str | None) -> dict[str, Any]:
        return {} if device_id is None else {"device_id": device_id}

    @staticmethod
    def _order(collection: str, device_id: str | None) -> list[tuple[str, int]]:
        if collection == CONFIGS and device_id is not None:
            return [("version", -1)]
        return [("received_at", -1), ("_id", -1)]

    @staticmethod
    def _normalised(docs: Any) -> Iterator[dict[str, Any]]:
        for doc in docs:
            at = doc.get("received_at")
            if isinstance(at, datetime):
                doc["received_at"] = at.astimezone(UTC)
            yield dict(doc)

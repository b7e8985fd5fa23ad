"""Engine construction and schema migration (Alembic) for the registry database."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from core.stores import StoreUnavailable

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


T = TypeVar("T")


class SchemaNotMigrated(RuntimeError):
    """The registry database is missing tables or is behind the code's migrations."""


def make_engine(url: str) -> Engine:
    """Engine for ``url``; SQLite gets WAL, foreign keys and its parent directory created."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config(engine: Engine | None = None) -> Config:
    """A programmatic Alembic config: scripts from this package, no alembic.ini lookup."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    """The newest migration revision the code knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def migrate(target: str | Engine, revision: str = "head") -> str:
    """Upgrade the schema at ``target`` (URL or engine) to ``revision``; returns it."""
    from alembic import command

    engine = make_engine(target) if isinstance(target, str) else target
    try:
        command.upgrade(alembic_config(engine), revision)
        return current_revision(engine) or ""
    finally:
        if isinstance(target, str):
            engine.dispose()


def check_migrated(engine: Engine) -> None:
    """Raise :class:`SchemaNotMigrated` unless the database is at the code's head revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise SchemaNotMigrated(
            f"registry schema is not migrated (at {current or 'empty'}, code needs {head}): run `iot registry migrate`"
        )


class EngineStore:
    """Base of the stores that live in the registry database: connection failures become
    :class:`ingest.stores.StoreUnavailable` so the daemon can spool and retry."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _guard(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except (OperationalError, InterfaceError) as e:
            first = str(e.orig or e).splitlines()[0]
            raise StoreUnavailable(f"registry unreachable: {first}") from e
        except DBAPIError as e:
            if e.connection_invalidated:
                raise StoreUnavailable(f"registry connection lost: {e.orig}") from e
            raise

    def connect(self) -> None:
        """Check the database is reachable and migrated."""
        self._guard(lambda: check_migrated(self.engine))

    def close(self) -> None:
        self.engine.dispose()

"""Engine construction and schema migration for the registry database."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event


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
        def _pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def migrate(url: str) -> None:
    """Bring the schema at ``url`` up to date (placeholder until Alembic migrations land)."""
    from registry.models import Base

    Base.metadata.create_all(make_engine(url))


def check_migrated(engine: Engine) -> None:
    """Raise :class:`SchemaNotMigrated` unless the schema is current."""
    from sqlalchemy import inspect

    if not inspect(engine).has_table("devices"):
        raise SchemaNotMigrated("registry schema is not migrated: run `iot registry migrate`")

"""Engine construction and schema migration (Alembic) for the registry database."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import ArgumentError, DBAPIError, InterfaceError, NoSuchModuleError, OperationalError

from core.redact import redact_url
from core.stores import StoreNeedsOperator, StoreUnavailable

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


T = TypeVar("T")


class SchemaNotMigrated(RuntimeError):
    """The registry database is missing tables or is behind the code's migrations."""


class RegistryConfigError(ValueError):
    """The registry URL cannot be used (malformed, unknown dialect or driver); one line, no secret."""


def make_engine(url: str) -> Engine:
    """Engine for ``url``; SQLite gets WAL, foreign keys and its parent directory created.
    A malformed URL raises :class:`RegistryConfigError` (its password redacted)."""
    try:
        return _make_engine(url)
    except (ArgumentError, NoSuchModuleError, ValueError, ImportError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        scheme = url.split("://", 1)[0].lower()
        if scheme in ("postgres", "postgresql", "postgresql+psycopg2"):  # Heroku/libpq spelling, or no driver
            reason += f"; for PostgreSQL use postgresql+psycopg://… (the driver installed), not {scheme}://"
        raise RegistryConfigError(f"invalid registry URL {redact_url(url)!r}: {redact_url(reason)}") from None


def _make_engine(url: str) -> Engine:
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


_REVISION = re.compile(r'^(down_revision|revision)\b[^=]*=\s*(?:"([^"]*)"|None)', re.MULTILINE)


def head_revision() -> str:
    """The newest migration revision the code knows: read from the scripts' ``revision`` and
    ``down_revision`` lines (every command checks it; Alembic's script loader would import each
    migration), through Alembic when that does not give one head."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (MIGRATIONS_DIR / "versions").glob("*.py"):
        for kind, value in _REVISION.findall(script.read_text(encoding="utf-8")):
            (revisions if kind == "revision" else parents).add(value)
    heads = revisions - parents - {""}
    return heads.pop() if len(heads) == 1 else alembic_head()


def alembic_head() -> str:
    """The head revision as Alembic computes it."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at, or None when it was never migrated (Alembic's
    ``alembic_version`` table, read directly: no migration environment to load)."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        versions = list(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    if len(versions) > 1:
        raise SchemaNotMigrated(f"registry schema has several heads ({', '.join(sorted(versions))})")
    return versions[0] if versions else None


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


# SQLSTATEs waiting will not fix: auth, privileges, missing database/schema/table/column
_OPERATOR_SQLSTATES = frozenset({"28000", "28P01", "42501", "3D000", "3F000", "42P01", "42703"})
_OPERATOR_PHRASES = ("password authentication failed", "does not exist")


def _needs_operator(orig: BaseException | None) -> bool:
    """Whether a driver error says the operator must act (PostgreSQL SQLSTATE, or libpq's
    connection-time messages, which carry none)."""
    if orig is None:
        return False
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state is not None:
        return state in _OPERATOR_SQLSTATES
    text = str(orig)
    return type(orig).__name__ == "OperationalError" and any(p in text for p in _OPERATOR_PHRASES)


def unreachable(e: BaseException) -> str | None:
    """One line saying the database could not be reached, if that is what ``e`` is (what waiting
    may fix: not an unmigrated schema, refused credentials or a missing database); else None."""
    if not isinstance(e, OperationalError | InterfaceError) or _needs_operator(e.orig):
        return None
    return str(e.orig or e).splitlines()[0] if str(e.orig or e) else type(e).__name__


class EngineStore:
    """Base of the stores that live in the registry database: connection failures become
    :class:`ingest.stores.StoreUnavailable` so the daemon can spool and retry."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _guard(self, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except DBAPIError as e:
            first = str(e.orig or e).splitlines()[0]
            if _needs_operator(e.orig):
                raise StoreNeedsOperator(f"registry database refuses us: {first}") from e
            if isinstance(e, OperationalError | InterfaceError):
                raise StoreUnavailable(f"registry unreachable: {first}") from e
            if e.connection_invalidated:
                raise StoreUnavailable(f"registry connection lost: {first}") from e
            raise

    def connect(self) -> None:
        """Check the database is reachable and migrated."""
        self._guard(lambda: check_migrated(self.engine))

    def close(self) -> None:
        self.engine.dispose()

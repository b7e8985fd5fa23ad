"""Acting on the registry as an operator (the API key, one session), and the one mapping from the
errors commands meet to a line on stderr and an :class:`~iot.cli.toolkit.ExitCode`.

Read commands use :func:`reading` (a Core connection: no ORM, no model declarations, no dialect but
the database's); :func:`acting` loads the ORM when a command changes the registry."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from pydantic import ValidationError
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError

from core.config import Settings
from core.stores import StoreConfigError, StoreUnavailable
from ingest.ports import PortInUse
from iot.cli.toolkit import CliError, ExitCode
from registry.actors import authorise
from registry.alerts.rules import InvalidTransition
from registry.auth import Actor, PermissionDenied, authenticate
from registry.db import (
    RegistryConfigError,
    SchemaNotMigrated,
    check_migrated,
    current_revision,
    head_revision,
    make_engine,
    migrate,
)

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


def _first_line(e: BaseException) -> str:
    text = str(e)
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"


def as_cli_error(e: Exception) -> CliError | None:
    """The one mapping from the errors commands meet to a line and an exit code; None for a bug."""
    if isinstance(e, CliError):
        return e
    if isinstance(e, PermissionDenied):
        return CliError(f"permission denied: {e}", ExitCode.DENIED)
    if isinstance(e, InvalidTransition):
        return CliError(str(e), ExitCode.STATE)
    if isinstance(e, StoreConfigError | SchemaNotMigrated | ValidationError | RegistryConfigError):
        return CliError(str(e), ExitCode.USAGE)
    if isinstance(e, PortInUse):
        return CliError(str(e), ExitCode.FAILED)
    if isinstance(e, StoreUnavailable | SQLAlchemyError | OSError):
        return CliError(_first_line(e), ExitCode.FAILED)
    if isinstance(e, LookupError):  # DeviceNotFound, AlertNotFound: the message is the first argument
        return CliError(str(e.args[0] if e.args else e), ExitCode.FAILED)
    if isinstance(e, ValueError):  # RuleError, BrokerConfigError and other invalid input
        return CliError(str(e), ExitCode.USAGE)
    return None


def ready(s: Settings, engine: Engine) -> None:
    """The registry at the code's schema: the embedded one (no ``IOT_REGISTRY_URL``) migrates
    itself, in every command as in the daemon; one named by URL must already be migrated
    (:class:`SchemaNotMigrated`: run ``iot registry migrate``)."""
    if not s.registry_url and current_revision(engine) != head_revision():
        migrate(engine)
    check_migrated(engine)


def api_key(s: Settings) -> str | None:
    """The operator's API key (IOT_API_KEY, or its file in IOT_SECRETS_DIR); None for none."""
    return s.api_key.get_secret_value() if s.api_key else None


@contextmanager
def _ready_engine(s: Settings, engine: Engine | None) -> Iterator[Engine]:
    """The engine at the code's schema; every error inside becomes one line and its exit code
    (:func:`as_cli_error`). ``engine`` is used (and left open) when given; otherwise one is made
    for ``s`` and disposed of."""
    own = engine is None
    eng = make_engine(s.resolved_registry_url()) if engine is None else engine
    try:
        ready(s, eng)
        yield eng
    except Exception as e:
        err = as_cli_error(e)
        if err is None:
            raise
        raise err from None
    finally:
        if own:
            eng.dispose()


@contextmanager
def acting(s: Settings, engine: Engine | None = None) -> Iterator[tuple[Session, Actor]]:
    """A session on the migrated registry and the actor behind the API key; commits on success.

    Every error inside becomes one line and its exit code (:func:`as_cli_error`). ``engine`` is
    used (and left open) when given; otherwise one is made for ``s`` and disposed of.
    """
    from sqlalchemy.orm import Session  # the ORM only for the commands that change the registry

    with _ready_engine(s, engine) as eng, Session(eng) as session:
        actor = authenticate(session, api_key(s))
        yield session, actor
        session.commit()


@contextmanager
def reading(s: Settings, engine: Engine | None = None) -> Iterator[tuple[Connection, Actor]]:
    """A Core connection on the migrated registry and the actor behind the API key, for commands
    that only read (nothing is committed); errors and ``engine`` as in :func:`acting`."""
    with _ready_engine(s, engine) as eng, eng.connect() as conn:
        yield conn, authenticate(conn, api_key(s))


def authorised(s: Settings, role: str, action: str, device_id: str | None = None) -> Actor:
    """The :class:`registry.auth.Actor` behind ``IOT_API_KEY`` with ``role`` (and, for a
    site-limited key, able to see ``device_id``); a refusal is one line and exit 3 (1 for a device
    it cannot see). For commands whose data lives outside the registry tables."""
    try:
        return authorise(s.resolved_registry_url(), api_key(s), role, action, device_id)
    except (PermissionDenied, LookupError) as e:
        err = as_cli_error(e)
        assert err is not None
        raise err from None

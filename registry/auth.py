"""Operators and their API keys: authentication, role checks, the audit trail.

Roles are ordered viewer < operator < admin; a key may be limited to sites. Bootstrap: while
the ``api_keys`` table is empty every caller acts as the built-in admin ``local-admin`` (a fresh
embedded setup works without keys); once the first key exists, a valid key is required.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update

from registry.identifiers import check_name
from registry.tables import api_keys, audit_log

if TYPE_CHECKING:
    from sqlalchemy import Connection, Row
    from sqlalchemy.orm import Session

    Db = Connection | Session  # both execute Core statements; read commands pass a Connection (no ORM)

ROLES = ("viewer", "operator", "admin")
KEY_PREFIX_LEN = 12
LOCAL_ADMIN = "local-admin"


class PermissionDenied(Exception):
    """The actor may not do this; the message is one clear line."""


@dataclass(frozen=True)
class Actor:
    name: str
    role: str
    sites: tuple[str, ...] | None  # None = all sites

    def can_see_site(self, site: str | None) -> bool:
        """True when the actor's key is not site-limited, or ``site`` is one of its sites."""
        return self.sites is None or (site is not None and site in self.sites)

    def covers(self, sites: Sequence[str] | None) -> bool:
        """True when everything limited to ``sites`` (None: all sites) lies within this actor's scope."""
        return self.sites is None or (bool(sites) and set(sites or ()) <= set(self.sites))

    def rank(self) -> int:
        return ROLES.index(self.role)


BOOTSTRAP_ACTOR = Actor(LOCAL_ADMIN, "admin", None)


def hash_key(key: str) -> str:
    """Keys are 256-bit random tokens, so a plain SHA-256 is a sound verifier."""
    return hashlib.sha256(key.encode()).hexdigest()


def authenticate(session: Db, api_key: str | None) -> Actor:
    """The actor behind ``api_key``; PermissionDenied for a missing, unknown or disabled key."""
    if not session.scalar(select(func.count()).select_from(api_keys)):
        return BOOTSTRAP_ACTOR
    if not api_key:
        raise PermissionDenied("an API key is required: set IOT_API_KEY (ask an admin for one)")
    digest = hash_key(api_key)
    for row in session.execute(select(api_keys).where(api_keys.c.key_prefix == api_key[:KEY_PREFIX_LEN])):
        if hmac.compare_digest(row.key_hash, digest):
            if row.disabled:
                raise PermissionDenied(f"API key {row.name!r} is disabled")
            return Actor(row.name, row.role, tuple(row.sites) if row.sites else None)
    raise PermissionDenied("unknown API key (check IOT_API_KEY)")


def require(actor: Actor, role: str, action: str, site: str | None = None) -> None:
    """Raise PermissionDenied unless ``actor`` has ``role`` or higher (and sees ``site``)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    if actor.rank() < ROLES.index(role):
        raise PermissionDenied(f"role {actor.role} may not {action} (needs {role})")
    if site is not None and not actor.can_see_site(site):
        assert actor.sites is not None
        raise PermissionDenied(
            f"key {actor.name!r} is limited to sites {', '.join(actor.sites)}: may not {action} at site {site}"
        )


def require_site(actor: Actor, role: str, action: str, site: str | None) -> None:
    """Like :func:`require` for something that lives at ``site``; for a site-limited actor a
    missing site (``None``: no site, i.e. visible to every operator) is outside its scope."""
    require(actor, role, action)
    if not actor.can_see_site(site):
        raise PermissionDenied(f"{_limited(actor)}: may not {action} {'at site ' + site if site else 'without a site'}")


def require_unrestricted(actor: Actor, role: str, action: str) -> None:
    """``role`` or higher and a key not limited to sites (the action reaches every site)."""
    require(actor, role, action)
    if actor.sites is not None:
        raise PermissionDenied(f"{_limited(actor)}: may not {action} (it reaches every site)")


def _limited(actor: Actor) -> str:
    return f"key {actor.name!r} is limited to sites {', '.join(actor.sites or ())}"


def record_audit(session: Db, actor: Actor, action: str, target: str, **detail: Any) -> None:
    """Add an audit entry (who, when, what, on what); the caller commits with the change."""
    session.execute(
        insert(audit_log).values(at=datetime.now(UTC), actor=actor.name, action=action, target=target, detail=detail)
    )


class FirstKeyNotAdmin(ValueError):
    """The first API key would not be an unrestricted admin: no key could manage keys afterwards."""


def create_key(session: Db, actor: Actor, name: str, role: str, sites: Sequence[str] = ()) -> str:
    """Create an API key and return it (the only time it is visible); admins only. The first key
    must be an admin for every site (:class:`FirstKeyNotAdmin`), or no one could manage keys."""
    require(actor, "admin", "manage API keys")
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r} (use {', '.join(ROLES)})")
    if ROLES.index(role) > actor.rank():
        raise PermissionDenied(f"role {actor.role} may not create a {role} key")
    if not actor.covers(sites):
        raise PermissionDenied(f"{_limited(actor)}: may only create keys limited to some of them")
    check_name("key name", name)
    for site in sites:
        check_name("site", site)
    if session.scalar(select(api_keys.c.id).where(api_keys.c.name == name)) is not None:
        raise ValueError(f"an API key named {name!r} already exists")
    if (role != "admin" or sites) and session.scalar(select(func.count()).select_from(api_keys)) == 0:
        raise FirstKeyNotAdmin(
            f"refusing to create {role} key {name!r} as the first API key: once a key exists every command "
            "needs one, and only an admin for every site can create more; create an admin key "
            "(--role admin, no --site) first"
        )
    key = "iotk_" + secrets.token_urlsafe(32)
    session.execute(
        insert(api_keys).values(
            name=name,
            key_prefix=key[:KEY_PREFIX_LEN],
            key_hash=hash_key(key),
            role=role,
            sites=list(sites) or None,
            created_at=datetime.now(UTC),
            disabled=False,
        )
    )
    record_audit(session, actor, "key.add", f"key:{name}", role=role, sites=list(sites) or None)
    return key


def list_keys(session: Db, actor: Actor) -> list[Row[Any]]:
    """The keys within the actor's scope (a site-limited admin sees keys limited to its sites):
    ``api_keys`` rows, by name."""
    require(actor, "admin", "list API keys")
    return [k for k in session.execute(select(api_keys).order_by(api_keys.c.name)) if actor.covers(k.sites)]


def disable_key(session: Db, actor: Actor, name: str) -> None:
    """Disable a key within the actor's scope; a site-limited admin cannot touch a wider key."""
    require(actor, "admin", "manage API keys")
    row = session.execute(select(api_keys.c.id, api_keys.c.sites).where(api_keys.c.name == name)).first()
    if row is None:
        raise LookupError(f"no API key named {name!r}")
    if not actor.covers(row.sites):
        raise PermissionDenied(f"{_limited(actor)}: may not disable key {name!r}, which reaches further")
    session.execute(update(api_keys).where(api_keys.c.id == row.id).values(disabled=True))
    record_audit(session, actor, "key.disable", f"key:{name}")

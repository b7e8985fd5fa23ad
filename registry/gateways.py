"""Gateway credentials: one broker account that publishes for many devices (a Zigbee2MQTT bridge,
a LoRaWAN network server) under one topic prefix. The exported ACL lets a gateway write under its
prefix and nowhere else; prefixes never overlap each other or the built-in contract's topics.

Operations take a Session and the acting operator, check role and site, record the audit trail;
the caller commits."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.timefmt import utc as _utc
from registry import credentials
from registry.auth import Actor, record_audit, require, require_site
from registry.identifiers import check_name
from registry.models import Device, Gateway
from registry.sparkplug_acl import parse_node

_LEVEL = re.compile(r"[A-Za-z0-9_.:@-]{1,64}")
PREFIX_RULE = "an MQTT filter of levels of [A-Za-z0-9_.:@-] (or + alone), optionally ending in /#, up to 256 characters"


class GatewayNotFound(LookupError):
    pass


def check_prefix(prefix: str) -> str:
    """``prefix`` when it is a topic filter a gateway may be given: its first level literal (never
    ``#`` or ``+`` alone: that would be every topic), only whole-level wildcards, no ``$``, no
    whitespace (it is written into the broker's ACL file); else ValueError (one line)."""
    if not isinstance(prefix, str) or not 0 < len(prefix) <= 256:
        raise ValueError(f"invalid gateway prefix {prefix!r}: {PREFIX_RULE}")
    levels = prefix.split("/")
    for i, level in enumerate(levels):
        last = i == len(levels) - 1
        ok = bool(_LEVEL.fullmatch(level)) or (level == "+" and i > 0) or (level == "#" and last and i > 0)
        if not ok:
            raise ValueError(f"invalid gateway prefix {prefix!r}: {PREFIX_RULE}")
    return prefix


def filters_overlap(a: str, b: str) -> bool:
    """True when some topic matches both MQTT filters ``a`` and ``b``."""
    la, lb = a.split("/"), b.split("/")
    for i in range(max(len(la), len(lb))):
        x = la[i] if i < len(la) else None
        y = lb[i] if i < len(lb) else None
        if x == "#" or y == "#":
            return True
        if x is None or y is None:
            return False
        if x != y and x != "+" and y != "+":
            return False
    return True


COLUMNS = ("name", "prefix", "site", "status", "created_at", "has_secret")
"""The keys of :func:`as_dict`, in order (a CSV header with no rows)."""


def as_dict(g: Gateway) -> dict[str, Any]:
    """The registry row as plain data (never the secret hash)."""
    return {
        "name": g.name,
        "prefix": g.prefix,
        "site": g.site,
        "status": g.status,
        "created_at": _utc(g.created_at),
        "has_secret": g.secret_hash is not None,
    }


def add_gateway(
    session: Session, actor: Actor, name: str, prefix: str, site: str | None = None, topic_root: str = "devices"
) -> str:
    """Register a gateway credential writing under ``prefix``; returns its fresh secret (shown once)."""
    require_site(actor, "admin", "add gateways", site)
    check_name("gateway name", name)
    check_prefix(prefix)
    if site is not None:
        check_name("site", site)
    if session.get(Gateway, name) is not None:
        raise ValueError(f"gateway {name} already exists")
    if session.get(Device, name) is not None:
        raise ValueError(f"a device is named {name}: a gateway's broker account must have a name of its own")
    check_prefix_free(session, prefix, topic_root)
    secret = credentials.issue_secret()
    session.add(
        Gateway(
            name=name,
            prefix=prefix,
            site=site,
            status="active",
            created_at=datetime.now(UTC),
            secret_hash=credentials.hash_mosquitto(secret),
        )
    )
    record_audit(session, actor, "gateway.add", f"gateway:{name}", prefix=prefix, site=site)
    return secret


def add_sparkplug_gateway(
    session: Session, actor: Actor, name: str, node: str, site: str | None = None, topic_root: str = "devices"
) -> str:
    """Register the credential of Sparkplug edge node ``node`` (``GROUP/EDGE``): the exported ACL lets
    it publish only that node's births, data and deaths and read its commands and ``STATE``
    (``registry.sparkplug_acl``). ``name`` is its broker username: no ``:`` (the password file's
    separator), so never the node's device id ``{group}:{edge}``. Returns its secret (shown once)."""
    edge_node = parse_node(node)
    if ":" in name:
        raise ValueError(f"invalid gateway name {name!r}: a broker username cannot contain ':'")
    return add_gateway(session, actor, name, edge_node.prefix, site, topic_root)


def check_prefix_free(session: Session, prefix: str, topic_root: str, exclude: str | None = None) -> None:
    """ValueError when ``prefix`` overlaps the built-in contract's topics or another gateway's prefix."""
    if filters_overlap(prefix, f"{topic_root}/#"):
        raise ValueError(f"gateway prefix {prefix!r} overlaps the devices' own topics {topic_root}/#")
    for other in session.scalars(select(Gateway).where(Gateway.status == "active")):
        if other.name != exclude and filters_overlap(prefix, other.prefix):
            raise ValueError(f"gateway prefix {prefix!r} overlaps gateway {other.name}'s prefix {other.prefix!r}")


def list_gateways(session: Session, actor: Actor) -> list[Gateway]:
    """Gateways the actor may see, by name."""
    require(actor, "viewer", "list gateways")
    q = select(Gateway).order_by(Gateway.name)
    if actor.sites is not None:
        q = q.where(Gateway.site.in_(actor.sites))
    return list(session.scalars(q))


def get_gateway(session: Session, actor: Actor, name: str) -> Gateway:
    require(actor, "viewer", "show gateways")
    g = session.get(Gateway, name)
    if g is None or not actor.can_see_site(g.site):
        raise GatewayNotFound(f"no gateway {name}")
    return g


def retire_gateway(session: Session, actor: Actor, name: str) -> Gateway:
    """Retire a gateway for good: its secret is dropped, the next export leaves it out."""
    g = get_gateway(session, actor, name)
    require_site(actor, "admin", "retire gateways", g.site)
    if g.status == "retired":
        raise ValueError(f"gateway {name} is retired already")
    g.status, g.secret_hash = "retired", None
    record_audit(session, actor, "gateway.retire", f"gateway:{name}", prefix=g.prefix)
    return g


def check_device_gateway(session: Session, actor: Actor, gateway: str) -> None:
    """A device may be put behind ``gateway`` (a valid name; a registered gateway within the actor's sites)."""
    check_name("gateway", gateway)
    g = session.get(Gateway, gateway)
    if g is not None and not actor.can_see_site(g.site):
        raise GatewayNotFound(f"no gateway {gateway}")

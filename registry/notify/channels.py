"""Notification channels: add, list, remove (admins; anyone may list), validated here. Database I/O
through SQLAlchemy Core (a ``Connection`` or an ORM ``Session``: no ORM loaded for `channels list`).

Site boundary: a channel of site S carries only S's alerts, and a key limited to sites adds,
sees, tests and removes only channels of its sites (a channel without a site, which carries every
site's alerts, needs a key without site limits). Secrets are global names in
``IOT_NOTIFY_SECRETS``; a name ``S/…`` belongs to site S, any other name is global. A site-limited
key may name only secrets of its channel's own site, and may not set ``ca_file`` (a file on the
notifier's host).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import delete, insert, select

from registry.auth import Actor, PermissionDenied, record_audit, require, require_site
from registry.notify.render import SEVERITIES
from registry.tables import notify_channels

if TYPE_CHECKING:
    from sqlalchemy import Connection, Row
    from sqlalchemy.orm import Session

CHANNEL_KINDS = ("webhook", "slack", "email")
TRANSITIONS = ("opened", "acknowledged", "resolved", "reminder")

DEFAULT_EVENTS = ("opened", "acknowledged", "resolved")
TLS_MODES = ("starttls", "ssl", "none")
SECRET_URL = "secret:"
SITE_SECRET_SEP = "/"  # never part of a site name (registry.identifiers)


def secret_site(name: str) -> str | None:
    """The site a secret belongs to: ``S/NAME`` is site S's; a name without ``/`` is global (None)."""
    site, sep, _ = name.partition(SITE_SECRET_SEP)
    return site if sep else None


class ChannelError(ValueError):
    """A channel definition that cannot work; the message says what to fix."""


class ChannelNotFound(LookupError):
    pass


@dataclass(frozen=True)
class ChannelSpec:
    name: str
    kind: str
    target: str
    secret_name: str | None = None
    min_severity: str = "info"
    site: str | None = None
    events: Sequence[str] = DEFAULT_EVENTS
    renotify_minutes: int = 0
    options: dict[str, Any] = field(default_factory=dict)

    def secrets(self) -> list[str]:
        """Every secret this channel names: ``--secret`` and a ``secret:NAME`` URL."""
        named = [self.secret_name] if self.secret_name else []
        if self.kind != "email" and self.target.startswith(SECRET_URL):
            named.append(self.target[len(SECRET_URL) :])
        return named

    def validate(self) -> None:
        if not self.name or len(self.name) > 128:
            raise ChannelError("a channel needs a name of 1-128 characters")
        if self.kind not in CHANNEL_KINDS:
            raise ChannelError(f"unknown channel kind {self.kind!r} (use {', '.join(CHANNEL_KINDS)})")
        if self.min_severity not in SEVERITIES:
            raise ChannelError(f"unknown severity {self.min_severity!r} (use {', '.join(SEVERITIES)})")
        bad = [e for e in self.events if e not in TRANSITIONS or e == "reminder"]
        if bad or not self.events:
            raise ChannelError(f"events must be some of {', '.join(DEFAULT_EVENTS)}")
        if self.renotify_minutes < 0:
            raise ChannelError("--renotify-minutes must be 0 (off) or more")
        if self.kind in ("webhook", "slack"):
            if self.target.startswith(SECRET_URL):
                if not self.target[len(SECRET_URL) :]:
                    raise ChannelError("--url secret:NAME needs a secret name")
            else:
                parts = urlsplit(self.target)
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise ChannelError(f"--url must be an http(s) URL or secret:NAME, got {_redact(self.target)!r}")
                if parts.password:
                    raise ChannelError("put credentials in a secret (--secret), not in the URL")
        else:
            addrs = [a.strip() for a in self.target.split(",") if a.strip()]
            if not addrs or any("@" not in a for a in addrs):
                raise ChannelError("--to needs one or more e-mail addresses, comma-separated")
            if not self.options.get("host"):
                raise ChannelError("an email channel needs --smtp-host")
            if str(self.options.get("tls", "starttls")) not in TLS_MODES:
                raise ChannelError(f"--smtp-tls must be one of {', '.join(TLS_MODES)}")
            if self.options.get("user") and not self.secret_name:
                raise ChannelError("--smtp-user needs --secret NAME (the password, from IOT_NOTIFY_SECRETS)")


def _redact(url: str) -> str:
    """Scheme, host and port only: webhook paths (Slack's above all) carry tokens."""
    if url.startswith(SECRET_URL):
        return url
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}/…" if parts.path not in ("", "/") else url
    except ValueError:
        return "(invalid URL)"


def _check_scope(actor: Actor, spec: ChannelSpec) -> None:
    """A site-limited key: its channel's own site's secrets only, and no file on the notifier's host."""
    if actor.sites is None:
        return
    limited = f"key {actor.name!r} is limited to sites {', '.join(actor.sites)}"
    for name in spec.secrets():
        if secret_site(name) != spec.site:
            raise PermissionDenied(
                f"{limited}: may name only secrets of site {spec.site} ('{spec.site}{SITE_SECRET_SEP}…'), not {name!r}"
            )
    if spec.options.get("ca_file"):
        raise PermissionDenied(f"{limited}: may not set --smtp-ca-file (a file on the notifier's host)")


def add_channel(session: Connection | Session, actor: Actor, spec: ChannelSpec) -> None:
    require_site(actor, "admin", "add notification channels", spec.site)
    spec.validate()
    _check_scope(actor, spec)
    if session.scalar(select(notify_channels.c.id).where(notify_channels.c.name == spec.name)) is not None:
        raise ChannelError(f"a channel named {spec.name!r} exists already")
    row = insert(notify_channels).values(
        name=spec.name,
        kind=spec.kind,
        target=spec.target,
        options=dict(spec.options),
        secret_name=spec.secret_name,
        min_severity=spec.min_severity,
        site=spec.site,
        events=list(spec.events),
        renotify_minutes=spec.renotify_minutes,
        enabled=True,
        created_at=datetime.now(UTC),
    )
    session.execute(row)
    record_audit(session, actor, "channel.add", f"channel:{spec.name}", kind=spec.kind, site=spec.site)


def get_channel(session: Connection | Session, actor: Actor, name: str) -> Row[Any]:
    """The channel's ``notify_channels`` row, if the actor may see it."""
    row = session.execute(select(notify_channels).where(notify_channels.c.name == name)).first()
    if row is None or not actor.can_see_site(row.site):
        raise ChannelNotFound(f"no channel {name!r}")
    return row


def remove_channel(session: Connection | Session, actor: Actor, name: str) -> None:
    """The channel and, by the database's cascade, its queued notifications."""
    row = get_channel(session, actor, name)
    require_site(actor, "admin", "remove notification channels", row.site)
    session.execute(delete(notify_channels).where(notify_channels.c.id == row.id))
    record_audit(session, actor, "channel.remove", f"channel:{name}")


COLUMNS = (
    "name", "kind", "target", "secret", "min_severity", "site", "events", "renotify_minutes", "options", "enabled",
    "created_at",
)  # fmt: skip
"""The keys of :func:`describe`, in order (a CSV header with no rows)."""


def describe(row: Any) -> dict[str, Any]:
    """A channel for display: the target redacted, the secret by name only."""
    target = _redact(row.target) if row.kind != "email" else row.target
    opts = {k: v for k, v in (row.options or {}).items()}
    return {
        "name": row.name,
        "kind": row.kind,
        "target": target,
        "secret": row.secret_name,
        "min_severity": row.min_severity,
        "site": row.site,
        "events": list(row.events or ()),
        "renotify_minutes": row.renotify_minutes,
        "options": opts,
        "enabled": row.enabled,
        "created_at": row.created_at,
    }


def list_channels(session: Connection | Session, actor: Actor) -> list[dict[str, Any]]:
    require(actor, "viewer", "list notification channels")
    rows = session.execute(select(notify_channels).order_by(notify_channels.c.name))
    return [describe(r) for r in rows if actor.can_see_site(r.site)]

"""Notification channels: add, list, remove (admins; anyone may list), validated here. Database I/O."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from registry.auth import Actor, record_audit, require
from registry.notify.models import CHANNEL_KINDS, TRANSITIONS, NotifyChannel
from registry.notify.render import SEVERITIES

DEFAULT_EVENTS = ("opened", "acknowledged", "resolved")
TLS_MODES = ("starttls", "ssl", "none")


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
            if self.target.startswith("secret:"):
                if not self.target[7:]:
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
    if url.startswith("secret:"):
        return url
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{parts.hostname or ''}{port}/…" if parts.path not in ("", "/") else url
    except ValueError:
        return "(invalid URL)"


def add_channel(session: Session, actor: Actor, spec: ChannelSpec) -> NotifyChannel:
    require(actor, "admin", "add notification channels", spec.site)
    spec.validate()
    if session.scalar(select(NotifyChannel).where(NotifyChannel.name == spec.name)) is not None:
        raise ChannelError(f"a channel named {spec.name!r} exists already")
    row = NotifyChannel(
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
    session.add(row)
    session.flush()
    record_audit(session, actor, "channel.add", f"channel:{spec.name}", kind=spec.kind, site=spec.site)
    return row


def get_channel(session: Session, actor: Actor, name: str) -> NotifyChannel:
    row = session.scalar(select(NotifyChannel).where(NotifyChannel.name == name))
    if row is None or not actor.can_see_site(row.site):
        raise ChannelNotFound(f"no channel {name!r}")
    return row


def remove_channel(session: Session, actor: Actor, name: str) -> None:
    row = get_channel(session, actor, name)
    require(actor, "admin", "remove notification channels", row.site)
    session.delete(row)
    record_audit(session, actor, "channel.remove", f"channel:{name}")


def describe(row: NotifyChannel) -> dict[str, Any]:
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


def list_channels(session: Session, actor: Actor) -> list[dict[str, Any]]:
    require(actor, "viewer", "list notification channels")
    rows = session.scalars(select(NotifyChannel).order_by(NotifyChannel.name))
    return [describe(r) for r in rows if actor.sites is None or r.site is None or r.site in actor.sites]

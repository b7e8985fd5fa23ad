"""Device registry operations: each takes a Session and the acting operator, checks the role,
changes rows and records the audit trail. The caller commits."""

from __future__ import annotations

import os
import pwd
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.broker_accounts import account_name, account_password, suffixes
from core.config import DEFAULT_MAX_PACKET_BYTES
from registry import credentials
from registry.auth import Actor, PermissionDenied, record_audit, require, require_site, require_unrestricted
from registry.device_queries import DeviceNotFound as DeviceNotFound
from registry.device_queries import as_dict as as_dict
from registry.device_queries import list_devices as list_devices
from registry.gateways import check_device_gateway, check_prefix, check_prefix_free
from registry.identifiers import check_labels, check_name
from registry.models import Device, Gateway

ACTIONS = {"disable": "disabled", "enable": None, "retire": "retired"}


def _check_id(device_id: str) -> None:
    check_name("device id", device_id)


def add_device(
    session: Session,
    actor: Actor,
    device_id: str,
    type: str = "generic",
    site: str | None = None,
    labels: Mapping[str, Any] | None = None,
    with_secret: bool = False,
    gateway: str | None = None,
) -> str | None:
    """Register a device (status provisioned), behind ``gateway`` if given (its messages are then
    accepted only through that gateway); returns its fresh secret when ``with_secret``."""
    require_site(actor, "admin", "add devices", site)
    _check_id(device_id)
    if gateway is not None:
        check_device_gateway(session, actor, gateway)
    if session.get(Gateway, device_id) is not None:
        raise ValueError(f"a gateway is named {device_id}: a device's broker account must have a name of its own")
    check_name("device type", type)
    if site is not None:
        check_name("site", site)
    labels = check_labels(labels or {})
    if session.get(Device, device_id) is not None:
        raise ValueError(f"device {device_id} already exists")
    secret = credentials.issue_secret() if with_secret else None
    session.add(
        Device(
            id=device_id,
            type=type,
            site=site,
            labels=dict(labels or {}),
            status="provisioned",
            online=False,
            created_at=datetime.now(UTC),
            secret_hash=credentials.hash_mosquitto(secret) if secret else None,
            gateway=gateway,
        )
    )
    record_audit(
        session,
        actor,
        "device.add",
        f"device:{device_id}",
        type=type,
        site=site,
        labels=dict(labels or {}),
        secret=bool(secret),
        gateway=gateway,
    )
    return secret


def get_device(session: Session, actor: Actor, device_id: str) -> Device:
    require(actor, "viewer", "show devices")
    device = session.get(Device, device_id)
    if device is None or not actor.can_see_site(device.site):
        raise DeviceNotFound(f"no device {device_id}")
    return device


def update_device(
    session: Session,
    actor: Actor,
    device_id: str,
    type: str | None = None,
    site: str | None = None,
    labels: Mapping[str, Any] | None = None,
    remove_labels: Sequence[str] = (),
) -> Device:
    """Change a device's type, site and labels (``labels`` set or replace keys, ``remove_labels``
    drop them), with the identifier rules of :func:`add_device`. Admins; a site-limited key may
    neither move a device out of its sites nor into another one. Audited with before and after."""
    device = get_device(session, actor, device_id)
    require_site(actor, "admin", "update devices", device.site)
    if type is None and site is None and not labels and not remove_labels:
        raise ValueError("nothing to update: give --type, --site, --label or --remove-label")
    if type is not None:
        check_name("device type", type)
    if site is not None:
        check_name("site", site)
        require_site(actor, "admin", "move devices", site)
    new_labels = check_labels(labels or {})
    current = dict(device.labels or {})
    for key in remove_labels:
        check_name("label key", key)
        if key in new_labels:
            raise ValueError(f"label {key!r} is both set and removed")
        if key not in current:
            raise ValueError(f"device {device_id} has no label {key!r}")
    before: dict[str, Any] = {"type": device.type, "site": device.site, "labels": current}
    if type is not None:
        device.type = type
    if site is not None:
        device.site = site
    device.labels = {k: v for k, v in current.items() if k not in remove_labels} | new_labels
    after: dict[str, Any] = {"type": device.type, "site": device.site, "labels": device.labels}
    changed = {k: {"before": before[k], "after": after[k]} for k in before if before[k] != after[k]}
    record_audit(session, actor, "device.update", f"device:{device_id}", **changed)
    return device


def set_status(session: Session, actor: Actor, device_id: str, action: str) -> Device:
    """``disable``, ``enable`` or ``retire`` a device; retirement is final (secret dropped)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r} (use {', '.join(ACTIONS)})")
    device = get_device(session, actor, device_id)
    require(actor, "admin", f"{action} devices", device.site)
    if device.status == "retired":
        raise ValueError(f"device {device_id} is retired: retirement is final")
    before = device.status
    if action == "enable":
        if device.status == "disabled":
            device.status = "active" if device.last_seen_at else "provisioned"
    else:
        device.status = ACTIONS[action] or device.status
    if action == "retire":
        device.secret_hash = None
        device.online = False
    record_audit(session, actor, f"device.{action}", f"device:{device_id}", before=before, after=device.status)
    return device


def provision_fleet(
    session: Session,
    actor: Actor,
    n: int,
    profiles: Sequence[str] = ("generic",),
    site: str | None = None,
    prefix: str = "sim",
) -> dict[str, str]:
    """Register devices ``{prefix}-0000`` … ``{prefix}-{n-1}`` — the ids ``iot sim run --devices n``
    uses, with profiles assigned round-robin in the simulator's order — each with a fresh secret;
    returns ``{device_id: secret}``. Devices that already exist get a new secret (rotated);
    disabled and retired ones are left alone and get none."""
    require_site(actor, "admin", "provision devices", site)
    if n < 1:
        raise ValueError("--devices must be at least 1")
    profiles = [check_name("device type", p) for p in profiles] or ["generic"]
    if site is not None:
        check_name("site", site)
    wanted = [f"{prefix}-{i:04d}" for i in range(n)]
    _check_id(wanted[-1])
    existing = {d.id: d for d in session.scalars(select(Device).where(Device.id.in_(wanted)))}
    foreign = sorted(d.id for d in existing.values() if not actor.can_see_site(d.site))
    if foreign:  # rotating them would hand this actor another site's credentials
        raise PermissionDenied(
            f"key {actor.name!r} may not provision {foreign[0]}"
            + (f" (and {len(foreign) - 1} more)" if len(foreign) > 1 else "")
            + ": it belongs to a site outside the key's scope"
        )
    now = datetime.now(UTC)
    secrets: dict[str, str] = {}
    fresh: list[str] = []
    for i, device_id in enumerate(wanted):
        device = existing.get(device_id)
        if device is not None and device.status in ("disabled", "retired"):
            continue
        secret = credentials.issue_secret()
        secrets[device_id] = secret
        if device is not None:
            device.secret_hash = credentials.hash_mosquitto(secret)
            continue
        fresh.append(device_id)
        session.add(
            Device(
                id=device_id,
                type=profiles[i % len(profiles)],
                site=site,
                labels={"simulated": True},
                status="provisioned",
                online=False,
                created_at=now,
                secret_hash=credentials.hash_mosquitto(secret),
            )
        )
    if not secrets:
        raise ValueError(f"every device {wanted[0]} … {wanted[-1]} is disabled or retired")
    record_audit(
        session,
        actor,
        "device.provision",
        f"fleet:{prefix}",
        count=n,
        new=len(fresh),
        rotated=len(secrets) - len(fresh),
        profiles=profiles,
        site=site,
        first=wanted[0],
        last=wanted[-1],
    )
    return secrets


def check_device_topic(template: str) -> str:
    """A direct device's topic filter with ``{device}`` standing for its id as one whole level."""
    levels = template.split("/")
    if levels.count("{device}") != 1:
        raise ValueError(f"invalid device topic {template!r}: exactly one level must be {{device}}")
    check_prefix("/".join("x" if level == "{device}" else level for level in levels))
    return template


@dataclass(frozen=True)
class FileOwner:
    """The account broker files are handed to (the user Mosquitto drops to when started as root)."""

    name: str
    uid: int
    gid: int


def file_owner(name: str) -> FileOwner:
    """The local account ``name`` as a :class:`FileOwner`; one-line ValueError when there is none or
    when this process could not give files to it (only root can, or the account itself)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise ValueError(f"--owner {name}: no such user on this machine") from None
    if os.geteuid() not in (0, entry.pw_uid):
        raise ValueError(
            f"--owner {name}: only root can hand files to another user; run the broker as yourself and leave it out"
        )
    return FileOwner(name, entry.pw_uid, entry.pw_gid)


def write_private(path: Path, text: str, owner: FileOwner | None = None) -> None:
    """Write ``text`` to ``path`` readable by the owner only (0600 from the first byte), owned by
    ``owner`` when given (else by this process's user)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        if owner is not None:
            os.fchown(f.fileno(), owner.uid, owner.gid)
        f.write(text)
    os.chmod(path, 0o600)


def export_mosquitto(
    session: Session,
    actor: Actor,
    directory: Path,
    ingest_user: str,
    ingest_password: str,
    topic_root: str = "devices",
    replay_user: str | None = None,
    replay_password: str = "",
    max_packet_size: int = DEFAULT_MAX_PACKET_BYTES,
    device_topics: Sequence[str] = (),
    owner: FileOwner | None = None,
    workers: int = 1,
) -> tuple[Path, Path, int]:
    """Write ``passwd``, ``acl`` and ``listener.conf`` (the listener options that bind client ids to
    usernames and cap the packet size at ``max_packet_size``, see
    :func:`registry.credentials.listener_conf`) for mosquitto; only provisioned/active
    devices with a secret get a password line (disabled and retired ones are refused by the broker).
    ``replay_user`` adds the account `iot deadletters replay` publishes with (it must not be the
    ingest account: with client ids bound to usernames it would take over the daemon's session).

    A direct device (no gateway) may write ``{topic_root}/{id}/#`` and the topics of
    ``device_topics``: filters in which ``{device}`` stands for its id (from the topic mappings).
    Each active gateway credential may write under its prefix and nowhere else.
    ``owner``: the files belong to that account (still 0600), e.g. the ``mosquitto`` user a broker
    started as root drops to before it reads them.
    ``workers`` > 1 (``iot ingest run --workers N``) adds an account per worker and one for the alert
    evaluator, ``{ingest_user}-{k}`` and ``{ingest_user}-alerts``, with the ingest account's ACL and
    passwords derived from ``ingest_password`` (:mod:`core.broker_accounts`): with client ids bound
    to usernames, one account per connection is what keeps the processes' sessions apart."""
    require_unrestricted(actor, "admin", "export broker credentials")
    check_name("ingest user", ingest_user)
    check_name("topic root", topic_root)
    if not ingest_password:
        raise ValueError("no ingest password: use --ingest-password-file or IOT_BROKER_PASSWORD")
    if not 1 <= workers <= 64:
        raise ValueError(f"workers must be 1 to 64, not {workers}")
    extra = [account_name(ingest_user, suffix) for suffix in suffixes(workers)]
    for account in extra:
        check_name("ingest user (with its worker suffix)", account)
    if replay_user is not None:
        check_name("replay user", replay_user)
        if replay_user in (ingest_user, *extra):
            raise ValueError("the replay account must differ from the ingest account")
        if not replay_password:
            raise ValueError("no replay password: use --replay-password-file")
    allowed = list(
        session.scalars(
            select(Device)
            .where(Device.status.in_(("provisioned", "active")), Device.secret_hash.is_not(None))
            .order_by(Device.id)
        )
    )
    for d in allowed:  # rows written before ids were checked strictly must not reach the broker files
        try:
            check_name("device id", d.id)
        except ValueError as e:
            raise ValueError(f"{e} (registered earlier): retire it, then export again") from None
    templates = [f"{topic_root}/{{device}}/#", *(check_device_topic(t) for t in device_topics)]
    gateways = list(
        session.scalars(
            select(Gateway).where(Gateway.status == "active", Gateway.secret_hash.is_not(None)).order_by(Gateway.name)
        )
    )
    for g in gateways:  # checked when added; again here, against this export's topic root and each other
        check_name("gateway name", g.name)
        check_prefix(g.prefix)
        check_prefix_free(session, g.prefix, topic_root, exclude=g.name)
    for account in (ingest_user, *extra, *([replay_user] if replay_user else [])):
        if any(d.id == account for d in allowed) or any(g.name == account for g in gateways):
            raise ValueError(f"a device or gateway is named like the service account {account!r}")
    clash = {d.id for d in allowed} & {g.name for g in gateways}
    if clash:
        raise ValueError(f"a device and a gateway are both named {sorted(clash)[0]!r}: retire one, then export again")
    entries = {ingest_user: credentials.hash_mosquitto(ingest_password)}
    entries.update({a: credentials.hash_mosquitto(account_password(ingest_password, a)) for a in extra})
    if replay_user is not None:
        entries[replay_user] = credentials.hash_mosquitto(replay_password)
    entries.update({d.id: d.secret_hash for d in allowed if d.secret_hash})
    entries.update({g.name: g.secret_hash for g in gateways if g.secret_hash})
    passwd, acl = directory / "passwd", directory / "acl"
    write_private(passwd, credentials.password_file(entries), owner)
    direct = [d.id for d in allowed if d.gateway is None]
    acl_text = credentials.acl_file(
        direct, ingest_user, topic_root, replay_user, [(g.name, g.prefix) for g in gateways], templates, extra
    )
    write_private(acl, acl_text, owner)
    conf = credentials.listener_conf(str(passwd.resolve()), str(acl.resolve()), max_packet_size)
    write_private(directory / "listener.conf", conf, owner)
    record_audit(
        session,
        actor,
        "broker.export",
        f"dir:{directory}",
        devices=len(allowed),
        gateways=[g.name for g in gateways],
        ingest_user=ingest_user,
        workers=workers,
        replay_user=replay_user,
        owner=owner.name if owner else None,
    )
    return passwd, acl, len(allowed)

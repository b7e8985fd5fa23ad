"""Device secrets: issued once at provisioning, stored only as a Mosquitto PBKDF2-SHA512 hash.

The hash format is mosquitto 2.x's ``$7$<iterations>$<base64 salt>$<base64 hash>`` (what
``mosquitto_passwd`` writes), so the registry can export a password file the broker reads as is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Sequence

from registry.sparkplug_acl import HOST_READS, HOST_WRITES, node_of

ITERATIONS = 1000
SALT_BYTES = 12
HASH_BYTES = 64


def issue_secret() -> str:
    """A fresh random device secret (shown once, never stored in clear)."""
    return secrets.token_urlsafe(24)


def hash_mosquitto(secret: str, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """``secret`` as a mosquitto ``$7$`` PBKDF2-SHA512 password-file hash."""
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations, HASH_BYTES)
    b64 = base64.b64encode
    return f"$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def verify(secret: str, hashed: str) -> bool:
    """True when ``secret`` matches a ``$7$`` hash (ours or mosquitto_passwd's)."""
    parts = hashed.split("$")
    if len(parts) != 5 or parts[0] or parts[1] != "7":
        return False
    try:
        iterations = int(parts[2])
        salt, expected = base64.b64decode(parts[3]), base64.b64decode(parts[4])
    except ValueError:
        return False
    if iterations < 1:
        return False
    digest = hashlib.pbkdf2_hmac("sha512", secret.encode(), salt, iterations, len(expected))
    return hmac.compare_digest(digest, expected)


def password_file(entries: dict[str, str]) -> str:
    """A mosquitto password file from ``{username: $7$ hash}``."""
    return "".join(f"{user}:{hashed}\n" for user, hashed in entries.items())


def acl_file(
    devices: list[str],
    ingest_user: str,
    topic_root: str = "devices",
    replay_user: str | None = None,
    gateways: Sequence[tuple[str, str]] = (),
    device_topics: Sequence[str] = (),
    ingest_accounts: Sequence[str] = (),
) -> str:
    """A mosquitto ACL file: each (direct) device writes only its own topics, each gateway only
    under its prefix, ingest reads all of them, the optional replay account (``iot deadletters
    replay``) writes the built-in contract's topics and reads nothing.

    ``device_topics`` are filters in which ``{device}`` stands for a device's id (default: the
    built-in contract's ``{topic_root}/{device}/#``); ``gateways`` are (account, prefix) pairs. A
    Sparkplug edge node's prefix (``registry.sparkplug_acl``) gives its account exactly the node's
    own topics and commands, and the ingest account (the host application) ``spBv1.0/#`` to read
    plus ``NCMD`` and ``STATE`` to write.
    ``ingest_accounts`` get the ingest account's rules: the accounts of ``--workers N``
    (:mod:`core.broker_accounts`), one per connection so none shares another's client id.
    Meant for a listener with ``use_username_as_clientid true`` (see :func:`listener_conf`), so a
    client id always names the account that authenticated."""
    templates = list(dict.fromkeys(device_topics or [f"{topic_root}/{{device}}/#"]))
    reads = dict.fromkeys([f"{topic_root}/#", *(t.replace("{device}", "+") for t in templates)])
    nodes = {name: node_of(prefix) for name, prefix in gateways}
    reads.update(dict.fromkeys(prefix for name, prefix in gateways if nodes[name] is None))
    writes: list[str] = []
    if any(nodes.values()):
        reads.update(dict.fromkeys(HOST_READS))
        writes = list(HOST_WRITES)
    rules = [*(f"topic read {r}" for r in reads), *(f"topic write {w}" for w in writes), ""]
    lines = [line for user in (ingest_user, *ingest_accounts) for line in (f"user {user}", *rules)]
    if replay_user is not None:
        lines += [f"user {replay_user}", f"topic write {topic_root}/#", ""]
    for device_id in devices:
        lines += [f"user {device_id}", *(f"topic write {t.replace('{device}', device_id)}" for t in templates), ""]
    for name, prefix in gateways:
        node = nodes[name]
        if node is None:
            lines += [f"user {name}", f"topic write {prefix}", ""]
        else:
            lines += [f"user {name}", *(f"topic write {w}" for w in node.writes())]
            lines += [*(f"topic read {r}" for r in node.reads()), ""]
    return "\n".join(lines)


def listener_conf(passwd: str, acl: str, max_packet_size: int) -> str:
    """The mosquitto (2.0) options that go right after a ``listener`` line.

    ``max_packet_size`` (``Settings.max_packet_bytes``: the payload limit plus header room) makes the
    broker refuse a larger packet from any client: it disconnects the publisher instead of queueing
    the message (a device learns its message was not taken: no PUBACK).

    ``use_username_as_clientid`` replaces whatever client id a client sends by its username, so a
    client id is bound to its credential: a device can only ever be the client named like itself and
    can never connect as the ingest account (take over or wipe its persistent session). Mosquitto
    2.0.11 applies it per listener: repeat these lines after every ``listener`` of the broker."""
    return (
        "# Written by `iot registry export-mosquitto`: put these lines after every `listener` line.\n"
        "# The client id is the username: no account can connect under another one's client id.\n"
        "use_username_as_clientid true\n"
        "allow_anonymous false\n"
        f"password_file {passwd}\n"
        f"acl_file {acl}\n"
        "# Packets larger than IOT_MAX_PAYLOAD_BYTES plus header room: the publisher is disconnected.\n"
        f"max_packet_size {max_packet_size}\n"
    )

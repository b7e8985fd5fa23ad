"""Device secrets: issued once at provisioning, stored only as a Mosquitto PBKDF2-SHA512 hash.

The hash format is mosquitto 2.x's ``$7$<iterations>$<base64 salt>$<base64 hash>`` (what
``mosquitto_passwd`` writes), so the registry can export a password file the broker reads as is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

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


def acl_file(devices: list[str], ingest_user: str, topic_root: str = "devices", replay_user: str | None = None) -> str:
    """A mosquitto ACL file: each device writes only under its own id, ingest reads everything,
    the optional replay account (``iot deadletters replay``) writes everything and reads nothing.

    Meant for a listener with ``use_username_as_clientid true`` (see :func:`listener_conf`), so a
    client id always names the account that authenticated."""
    lines = [f"user {ingest_user}", f"topic read {topic_root}/#", ""]
    if replay_user is not None:
        lines += [f"user {replay_user}", f"topic write {topic_root}/#", ""]
    for device_id in devices:
        lines += [f"user {device_id}", f"topic write {topic_root}/{device_id}/#", ""]
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

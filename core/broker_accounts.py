"""The broker accounts of ``iot ingest run --workers N``: one per connection.

A broker that binds client ids to usernames (Mosquitto's ``use_username_as_clientid``, the exported
listener config) gives every connection of one account the same client id, so N workers and the
alert evaluator on the ingest account would take each other's session over. Each of them therefore
connects as an account of its own, ``{user}-{suffix}`` (suffix ``0`` .. ``N-1`` for the workers,
``alerts`` for the evaluator), with the same ACL as the ingest account.

Its password is derived from the ingest account's (``IOT_BROKER_PASSWORD``) and its name by
HMAC-SHA256: the export (``iot registry export-mosquitto --workers N``) and the daemon compute the
same one from the one secret the operator keeps; no password of another account (or the ingest
password) can be computed from it.
"""

from __future__ import annotations

import hashlib
import hmac

EVALUATOR = "alerts"
"""The alert evaluator's suffix (its client id is ``{IOT_CLIENT_ID}-alerts`` too)."""


def account_name(user: str, suffix: str) -> str:
    """The account a process with ``suffix`` connects as, next to the ingest account ``user``."""
    return f"{user}-{suffix}"


def account_password(secret: str, account: str) -> str:
    """The password of ``account``, derived from the ingest account's ``secret``."""
    return hmac.new(secret.encode(), f"iot broker account\0{account}".encode(), hashlib.sha256).hexdigest()


def suffixes(workers: int) -> list[str]:
    """The suffixes of ``--workers N``: each worker's, then the evaluator's; none for one process."""
    return [*(str(k) for k in range(workers)), EVALUATOR] if workers > 1 else []

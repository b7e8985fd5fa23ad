"""How `iot alerts show` prints an alert's notifications and their delivery attempts."""

from __future__ import annotations

from collections.abc import Sequence

from iot.cli.toolkit import print_table
from registry.notify.outbox import NotificationRecord


def print_notifications(rows: Sequence[NotificationRecord]) -> None:
    print_table(
        ["CHANNEL", "TRANSITION", "STATUS", "ATTEMPT AT", "RESULT", "CODE", "ERROR / NEXT TRY"],
        (
            [
                r.channel,
                r.transition,
                r.status,
                r.attempt_at,
                "" if r.ok is None else "ok" if r.ok else "failed",
                r.status_code,
                r.error or (f"next try {r.next_at:%H:%M:%S}" if r.next_at and r.ok is None else ""),
            ]
            for r in rows
        ),
        title="notifications",
    )

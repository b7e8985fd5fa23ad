"""What a notification says, per channel kind, and whether a channel wants an alert. Pure, no I/O.

The outbox keeps one ``payload`` per notification (the generic webhook body, built when the
transition happened); the Slack body and the e-mail are rendered from it at send time.

Device text (an alert's message comes from an event's) is data, never markup or a line break
(``core.devicetext``): every string in a Slack message is escaped (``&``, ``<``, ``>``), the
summary and each e-mail line are one line (controls, U+2028/U+2029 and bidi controls become
spaces). Rendering at send time also neutralises payloads queued before these rules.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.devicetext import for_slack, one_line

SEVERITIES = ("critical", "major", "minor", "warning", "info")  # most severe first
SIGNATURE_HEADER = "X-IOT-Signature-256"
DELIVERY_HEADER = "X-IOT-Delivery"
SLACK_COLORS = {"critical": "#b00020", "major": "#e65100", "minor": "#f9a825", "warning": "#fbc02d", "info": "#1976d2"}


@dataclass(frozen=True)
class Route:
    """A channel's routing: severity at or above ``min_severity``, ``site`` (None: all), events."""

    min_severity: str
    site: str | None
    events: Sequence[str]

    def wants(self, severity: str, site: str | None, transition: str) -> bool:
        if transition not in self.events:
            return False
        if self.site is not None and site != self.site:
            return False
        rank = SEVERITIES.index(severity) if severity in SEVERITIES else len(SEVERITIES)
        return rank <= SEVERITIES.index(self.min_severity)


def summary_line(p: dict[str, Any]) -> str:
    """``[MAJOR] opened: rule on device (site): message`` — no links, one line."""
    a, d = p["alert"], p["device"]
    where = f" ({d['site']})" if d.get("site") else ""
    what = p["transition"] if p["transition"] != "reminder" else f"still open after {p.get('open_minutes', '?')} min"
    by = f" by {p['actor']}" if p.get("actor") else ""
    msg = f": {a['message']}" if a.get("message") else ""
    return one_line(f"[{a['severity'].upper()}] {what}{by}: {p['rule']['name']} on {d['id']}{where}{msg}")[:500]


def payload(
    *,
    transition: str,
    delivery: str,
    alert: dict[str, Any],
    rule: dict[str, Any],
    device: dict[str, Any],
    actor: str | None = None,
    open_minutes: int | None = None,
) -> dict[str, Any]:
    """The generic webhook body (also what the outbox stores)."""
    p: dict[str, Any] = {
        "event": f"alert.{transition}",
        "transition": transition,
        "delivery": delivery,
        "alert": alert,
        "rule": rule,
        "device": device,
        "site": device.get("site"),
    }
    if actor:
        p["actor"] = actor
    if open_minutes is not None:
        p["open_minutes"] = open_minutes
    p["summary"] = summary_line(p)
    return p


def webhook_body(p: dict[str, Any]) -> bytes:
    return json.dumps(p, sort_keys=True, separators=(",", ":")).encode()


def signature(secret: str, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256 of the exact body>`` (the receiver recomputes and compares)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def slack_body(p: dict[str, Any]) -> bytes:
    """A Slack incoming-webhook message: ``text`` (fallback) plus one coloured attachment; every
    string in it escaped for Slack (``<!channel>`` or ``<http://evil|label>`` from a device shows as
    typed)."""
    a, d = p["alert"], p["device"]
    fields = [
        {"title": "Severity", "value": _slack(a["severity"]), "short": True},
        {"title": "Status", "value": _slack(a["status"]), "short": True},
        {"title": "Device", "value": _slack(d["id"]), "short": True},
        {"title": "Site", "value": _slack(d.get("site") or "-"), "short": True},
    ]
    if a.get("last_value") is not None:
        fields.append({"title": "Last value", "value": _slack(a["last_value"]), "short": True})
    body = {
        "text": _slack(p["summary"]),
        "attachments": [
            {
                "color": SLACK_COLORS.get(a["severity"], "#9e9e9e"),
                "title": _slack(f"Alert #{a['id']} {p['transition']}"),
                "fields": fields,
                "footer": _slack(f"polyglot-iot · rule {p['rule']['name']}"),
            }
        ],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def _slack(value: object) -> str:
    """One string of a Slack message: one line, ``&``, ``<``, ``>`` escaped."""
    return for_slack(one_line(str(value)))


def email_text(p: dict[str, Any]) -> tuple[str, str]:
    """Subject and plain-text body; each a device string may reach is one line (so no header can be
    split or refused, and no body line forged)."""
    a, d, r = p["alert"], p["device"], p["rule"]
    lines = [
        p["summary"],
        "",
        f"alert       #{a['id']} ({a['status']})",
        f"severity    {a['severity']}",
        f"rule        {r['name']} ({r.get('kind', '')})",
        f"device      {d['id']} (type {d.get('type') or '-'}, site {d.get('site') or '-'})",
        f"message     {a.get('message') or ''}",
        f"last value  {a.get('last_value')}",
        f"opened at   {a.get('opened_at')}",
    ]
    for key in ("acknowledged_at", "resolved_at"):
        if a.get(key):
            lines.append(f"{key.replace('_', ' '):11} {a[key]}")
    lines = [one_line(line) for line in lines]
    lines += ["", f"delivery {p['delivery']}"]
    return one_line(p["summary"])[:200], "\n".join(lines) + "\n"

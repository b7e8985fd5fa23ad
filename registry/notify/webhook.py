"""HTTP senders: the generic JSON webhook (optionally HMAC-signed) and Slack incoming webhooks.

Lifecycle: stateless; ``send`` opens one HTTPS/HTTP request per notification, bounded by one overall
deadline of ``timeout`` seconds (connect, TLS, request and reading the reply:
:mod:`registry.notify.deadline`), and maps every failure (refused, deadline, non-2xx) to an
:class:`Outcome`, never an exception.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request

from registry.notify.deadline import Deadline, http_opener
from registry.notify.outbox import Delivery, Outcome
from registry.notify.render import DELIVERY_HEADER, SIGNATURE_HEADER, signature, slack_body, webhook_body

USER_AGENT = "polyglot-iot-notifier/1"


def _redact(url: str) -> str:
    """Scheme and host only: webhook paths often carry a token."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}/…"


class WebhookSender:
    """POST the notification as JSON; ``slack`` picks the Slack message body."""

    def __init__(self, slack: bool = False, timeout: float = 10.0) -> None:
        self.slack = slack
        self.timeout = timeout

    def send(self, d: Delivery, url: str, secret: str | None) -> Outcome:
        body = slack_body(d.payload) if self.slack else webhook_body(d.payload)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, DELIVERY_HEADER: d.key}
        if secret and not self.slack:
            headers[SIGNATURE_HEADER] = signature(secret, body)
        req = urllib.request.Request(url, data=body, headers=headers, method="POST")
        started = time.perf_counter()
        deadline = Deadline(self.timeout)

        def ms() -> int:
            return int((time.perf_counter() - started) * 1000)

        try:
            with deadline.watch() as watch, http_opener(watch).open(req, timeout=deadline.remaining()) as resp:
                code = int(resp.status)
                resp.read(65536)
        except urllib.error.HTTPError as e:
            return Outcome(False, e.code, f"HTTP {e.code} {e.reason} from {_redact(url)}", ms())
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
            if deadline.ended(e):
                return Outcome(False, None, f"{deadline.describe()} ({_redact(url)})", ms())
            reason = getattr(e, "reason", e)
            return Outcome(False, None, f"{type(e).__name__}: {reason} ({_redact(url)})", ms())
        if 200 <= code < 300:
            return Outcome(True, code, None, ms())
        return Outcome(False, code, f"HTTP {code} from {_redact(url)}", ms())

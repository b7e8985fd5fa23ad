"""HTTP senders: the generic JSON webhook (optionally HMAC-signed) and Slack incoming webhooks.

Lifecycle: stateless; ``send`` opens one HTTPS/HTTP request per notification under one overall
deadline of ``timeout`` seconds (connect, TLS, request and reading the reply:
:mod:`registry.notify.deadline`) and maps every failure (refused, deadline, non-2xx) to an
:class:`AttemptResult`, never an exception. The
connection goes through the :class:`~registry.notify.netguard.NetGuard` (checked address, no
re-resolution); redirects are not followed (a 3xx is a failed attempt); environment proxies are
not used. A failed attempt records ``HTTP <code>`` when an HTTP answer came, else one generic text.
"""

from __future__ import annotations

import http.client
import ssl
import time
from urllib.parse import urlsplit

from registry.notify.deadline import Deadline, Watch
from registry.notify.netguard import NetGuard, failure_text
from registry.notify.outbox import AttemptResult, Delivery
from registry.notify.render import DELIVERY_HEADER, SIGNATURE_HEADER, signature, slack_body, webhook_body

USER_AGENT = "polyglot-iot-notifier/1"


class _GuardedHTTP(http.client.HTTPConnection):
    """HTTP to an address the guard resolved and checked; ``tls`` wraps it for the named host."""

    def __init__(self, host: str, port: int, watch: Watch, guard: NetGuard, tls: ssl.SSLContext | None) -> None:
        super().__init__(host, port, timeout=watch.deadline.remaining())
        self._guard = guard
        self._tls = tls
        self._watch = watch

    def connect(self) -> None:
        sock = self._watch.add(self._guard.connect(self.host, self.port, self._watch.deadline.remaining()))
        self.sock = sock if self._tls is None else self._tls.wrap_socket(sock, server_hostname=self.host)


class WebhookSender:
    """POST the notification as JSON; ``slack`` picks the Slack message body."""

    def __init__(self, slack: bool = False, timeout: float = 10.0, guard: NetGuard | None = None) -> None:
        self.slack = slack
        self.timeout = timeout
        self.guard = guard or NetGuard()

    def send(self, d: Delivery, url: str, secret: str | None) -> AttemptResult:
        body = slack_body(d.payload) if self.slack else webhook_body(d.payload)
        headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, DELIVERY_HEADER: d.key}
        if secret and not self.slack:
            headers[SIGNATURE_HEADER] = signature(secret, body)
        started = time.perf_counter()

        def ms() -> int:
            return int((time.perf_counter() - started) * 1000)

        try:
            parts = urlsplit(url)
            host, port = parts.hostname, parts.port
        except ValueError:
            return AttemptResult(False, None, "the target is not a valid URL", ms())
        if parts.scheme not in ("http", "https") or not host:
            return AttemptResult(False, None, "the target is not an http(s) URL", ms())
        port = port or (443 if parts.scheme == "https" else 80)
        tls = ssl.create_default_context() if parts.scheme == "https" else None
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        deadline = Deadline(self.timeout)
        try:
            with deadline.watch() as watch:
                conn = _GuardedHTTP(host, port, watch, self.guard, tls)
                try:
                    conn.request("POST", path, body=body, headers=headers)
                    resp = conn.getresponse()
                    code = int(resp.status)
                    resp.read(65536)
                finally:
                    conn.close()
        except (OSError, http.client.HTTPException, ValueError) as e:
            if deadline.ended(e):
                return AttemptResult(False, None, deadline.describe(), ms())
            return AttemptResult(False, None, failure_text(e, f"{parts.scheme}://{host}:{port}"), ms())
        if 200 <= code < 300:
            return AttemptResult(True, code, None, ms())
        if 300 <= code < 400:
            return AttemptResult(False, code, f"HTTP {code} (redirects are not followed)", ms())
        return AttemptResult(False, code, f"HTTP {code}", ms())

"""E-mail over SMTP: STARTTLS (unless the channel says ``tls: none``), then AUTH when a user is set.

Lifecycle: stateless; ``send`` opens one SMTP session per notification under one overall
deadline of ``timeout`` seconds (connect, TLS, every command and reply:
:mod:`registry.notify.deadline`) and maps every failure to an :class:`AttemptResult` (``status_code`` =
the SMTP reply code when there is one).
Channel options: ``host``, ``port`` (587), ``user``, ``from``, ``tls`` (``starttls`` | ``ssl``
| ``none``), ``ca_file`` (a private CA to trust). The password is the channel's secret.
The connection goes through the :class:`~registry.notify.netguard.NetGuard` (checked address, no
re-resolution; TLS still verifies the certificate for the named host). A failed attempt records
``SMTP <code>`` when an SMTP reply came, else one generic text (the server's words go to the log).
"""

from __future__ import annotations

import logging
import smtplib
import socket
import ssl
import time
from email.message import EmailMessage

from registry.notify.deadline import Deadline, Watch
from registry.notify.netguard import NetGuard, failure_text
from registry.notify.outbox import AttemptResult, Delivery
from registry.notify.render import DELIVERY_HEADER, email_text

log = logging.getLogger("iot.notify")


class _GuardedSMTP(smtplib.SMTP):
    """SMTP to an address the guard resolved and checked, the connection watched by the attempt's
    deadline; ``tls`` wraps it at once (``ssl`` mode)."""

    def __init__(self, guard: NetGuard, tls: ssl.SSLContext | None, host: str, port: int, watch: Watch) -> None:
        self._guard = guard
        self._tls = tls
        self._watch = watch
        # connects; no 220 greeting: SMTPConnectError
        super().__init__(host, port, timeout=watch.deadline.remaining())

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = self._watch.add(self._guard.connect(host, port, self._watch.deadline.remaining()))
        return sock if self._tls is None else self._tls.wrap_socket(sock, server_hostname=host)


class EmailSender:
    def __init__(self, timeout: float = 15.0, guard: NetGuard | None = None) -> None:
        self.timeout = timeout
        self.guard = guard or NetGuard()

    def send(self, d: Delivery, recipients: str, secret: str | None) -> AttemptResult:
        o = d.options
        host, port = str(o.get("host", "localhost")), int(o.get("port", 587))
        tls = str(o.get("tls", "starttls"))
        user = o.get("user")
        subject, text = email_text(d.payload)
        msg = EmailMessage()
        msg["Subject"] = subject
        msg["From"] = str(o.get("from") or user or "iot-alerts@localhost")
        msg["To"] = recipients
        msg[DELIVERY_HEADER] = d.key
        msg.set_content(text)
        started = time.perf_counter()
        deadline = Deadline(self.timeout)

        def ms() -> int:
            return int((time.perf_counter() - started) * 1000)

        try:
            ctx = ssl.create_default_context(cafile=o.get("ca_file") or None)
            with (
                deadline.watch() as watch,
                _GuardedSMTP(self.guard, ctx if tls == "ssl" else None, host, port, watch) as smtp,
            ):
                smtp.ehlo()
                if tls == "starttls":
                    smtp.starttls(context=ctx)
                    smtp.ehlo()
                if user:
                    if secret is None:
                        return AttemptResult(False, None, "SMTP user set but no password secret", ms())
                    smtp.login(str(user), secret)
                smtp.send_message(msg, to_addrs=[a.strip() for a in recipients.split(",") if a.strip()])
        except smtplib.SMTPResponseException as e:
            if deadline.ended(e):  # a reply cut short by the watchdog (e.g. a trickled greeting)
                return AttemptResult(False, None, deadline.describe(), ms())
            if isinstance(e, smtplib.SMTPConnectError) or not 200 <= e.smtp_code <= 599:  # no SMTP greeting
                return AttemptResult(False, None, failure_text(e, f"smtp://{host}:{port}"), ms())
            log.info("notification to smtp://%s:%d: SMTP %d %r", host, port, e.smtp_code, e.smtp_error[:200])
            return AttemptResult(False, e.smtp_code, f"SMTP {e.smtp_code}", ms())
        except (smtplib.SMTPException, OSError, ValueError) as e:
            if deadline.ended(e):
                return AttemptResult(False, None, deadline.describe(), ms())
            return AttemptResult(False, None, failure_text(e, f"smtp://{host}:{port}"), ms())
        return AttemptResult(True, 250, None, ms())

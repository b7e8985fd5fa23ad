"""E-mail over SMTP: STARTTLS (unless the channel says ``tls: none``), then AUTH when a user is set.

Lifecycle: stateless; ``send`` opens one SMTP session per notification, bounded by one overall
deadline of ``timeout`` seconds (connect, TLS, every command and reply:
:mod:`registry.notify.deadline`), and maps every failure to an :class:`Outcome` (``status_code`` =
the SMTP reply code when there is one).
Channel options: ``host``, ``port`` (587), ``user``, ``from``, ``tls`` (``starttls`` | ``ssl``
| ``none``), ``ca_file`` (a private CA to trust). The password is the channel's secret.
"""

from __future__ import annotations

import smtplib
import ssl
import time
from email.message import EmailMessage

from registry.notify.deadline import Deadline, smtp_session
from registry.notify.outbox import Delivery, Outcome
from registry.notify.render import DELIVERY_HEADER, email_text


class EmailSender:
    def __init__(self, timeout: float = 15.0) -> None:
        self.timeout = timeout

    def send(self, d: Delivery, recipients: str, secret: str | None) -> Outcome:
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
        ctx = ssl.create_default_context(cafile=o.get("ca_file") or None)
        started = time.perf_counter()
        deadline = Deadline(self.timeout)

        def ms() -> int:
            return int((time.perf_counter() - started) * 1000)

        try:
            with deadline.watch() as watch, smtp_session(watch, host, port, ctx if tls == "ssl" else None) as smtp:
                smtp.ehlo()
                if tls == "starttls":
                    smtp.starttls(context=ctx)
                    smtp.ehlo()
                if user:
                    if secret is None:
                        return Outcome(False, None, "SMTP user set but no password secret", ms())
                    smtp.login(str(user), secret)
                smtp.send_message(msg, to_addrs=[a.strip() for a in recipients.split(",") if a.strip()])
        except smtplib.SMTPResponseException as e:
            text_ = e.smtp_error.decode("utf-8", "replace") if isinstance(e.smtp_error, bytes) else str(e.smtp_error)
            return Outcome(False, e.smtp_code, f"SMTP {e.smtp_code} {text_}"[:500], ms())
        except (smtplib.SMTPException, OSError, ssl.SSLError) as e:
            if deadline.ended(e):
                return Outcome(False, None, f"{deadline.describe()} ({host}:{port})", ms())
            return Outcome(False, None, f"{type(e).__name__}: {e} ({host}:{port})"[:500], ms())
        return Outcome(True, 250, None, ms())

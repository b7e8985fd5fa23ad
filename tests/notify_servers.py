"""Real receivers for notification tests: an HTTP server that records POSTs (and can be taken down
and brought back on the same port, or made to answer 500), an SMTP server (aiosmtpd) with
STARTTLS and AUTH on a throwaway self-signed certificate, and bad receivers: one that accepts
and never answers, and ones that trickle an answer a byte at a time."""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.servers import free_port


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    method: str = "POST"

    def json(self) -> Any:
        return json.loads(self.body)

    def header(self, name: str) -> str | None:
        """HTTP header names are case-insensitive (urllib sends ``X-iot-delivery``)."""
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)


@dataclass
class HttpReceiver:
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    status: int = 200
    location: str | None = None  # sent as Location (with status 3xx: a redirect)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> HttpReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(n)
                code = receiver.status
                if code < 300:
                    with receiver._lock:
                        received = Received(self.path, dict(self.headers.items()), body, self.command)
                        receiver.received.append(received)
                self.send_response(code)
                if receiver.location is not None:
                    self.send_header("Location", receiver.location)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST  # a followed redirect may arrive as a GET: recorded too

            def log_message(self, *_args: Any) -> None:
                pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def bodies(self, path: str | None = None) -> list[Any]:
        with self._lock:
            return [r.json() for r in self.received if path is None or r.path == path]


class BannerServer:
    """A TCP port that is open but speaks neither HTTP nor SMTP: each connection gets one
    SSH-like banner line and is closed."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 internal-db-host\r\n")

    def __enter__(self) -> BannerServer:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept (close alone does not, on Linux)
        self.sock.close()
        self._thread.join(5)


def self_signed(tmp: Path) -> tuple[Path, Path]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl not found: needed to make a certificate for the STARTTLS test server")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
            "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


@dataclass
class SmtpServer:
    port: int
    cert: Path
    user: str
    password: str
    messages: list[Any] = field(default_factory=list)
    auth_ok: list[str] = field(default_factory=list)
    controller: Any = None


@contextmanager
def smtp_server(tmp_path: Path) -> Iterator[SmtpServer]:
    """aiosmtpd with STARTTLS required before AUTH, and AUTH required before MAIL."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult, LoginPassword

    cert, key = self_signed(tmp_path)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    server = SmtpServer(free_port(), cert, "alerts@example.org", "s3cret-smtp")

    class Handler:
        async def handle_DATA(self, _srv: Any, _session: Any, envelope: Any) -> str:
            from email import message_from_bytes

            msg = message_from_bytes(envelope.content)
            server.messages.append((envelope.rcpt_tos, msg))
            return "250 OK"

    def authenticator(_srv: Any, _session: Any, _env: Any, mechanism: str, data: Any) -> AuthResult:
        ok = (
            isinstance(data, LoginPassword)
            and data.login.decode() == server.user
            and data.password.decode() == server.password
        )
        if ok:
            server.auth_ok.append(mechanism)
        return AuthResult(success=ok)

    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=server.port,
        tls_context=ctx,
        require_starttls=True,
        authenticator=authenticator,
        auth_required=True,
        auth_require_tls=True,
    )
    controller.start()
    server.controller = controller
    try:
        yield server
    finally:
        controller.stop()


@dataclass
class TrickleReceiver:
    """A receiver that accepts and then answers one byte every ``interval`` seconds: ``prefix``, then
    ``filler`` over and over, for ``max_s`` seconds a connection (a socket timeout never fires)."""

    prefix: bytes
    filler: bytes
    interval: float = 0.3
    max_s: float = 30.0
    port: int = field(default_factory=free_port)
    connections: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _listener: socket.socket | None = None
    _threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> TrickleReceiver:
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._listener.settimeout(0.2)
        self._spawn(self._accept)
        return self

    def _spawn(self, target: Any, *args: Any) -> None:
        t = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(t)
        t.start()

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._spawn(self._trickle, conn)

    def _trickle(self, conn: socket.socket) -> None:
        def data() -> Iterator[int]:
            yield from self.prefix
            while True:
                yield from self.filler

        ends = time.monotonic() + self.max_s
        with conn:
            for byte in data():
                if time.monotonic() > ends or self._stop.wait(self.interval):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return  # the client gave up

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        for t in self._threads:
            t.join(5)


def trickling_http() -> TrickleReceiver:
    """A status line, then header lines, a byte at a time."""
    return TrickleReceiver(b"HTTP/1.1 200 OK\r\n", b"X-Slow: 1\r\n")


def trickling_smtp() -> TrickleReceiver:
    """A greeting of continuation lines that never ends, a byte at a time."""
    return TrickleReceiver(b"", b"220-slow\r\n")


@contextmanager
def dead_receiver() -> Iterator[int]:
    """A port that accepts TCP connections (into its backlog) and never answers; yields the port."""
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(16)
        yield int(hole.getsockname()[1])

"""``/metrics`` (Prometheus text) and ``/healthz`` (JSON) for the daemon, on a small thread."""

from __future__ import annotations

import errno
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ingest.metrics import Metrics
from ingest.ports import PortInUse

__all__ = ["PortInUse", "serve_metrics"]


def serve_metrics(metrics: Metrics, host: str, port: int) -> ThreadingHTTPServer:
    """Start serving; returns the server (``server_address`` has the bound port; ``shutdown()`` stops it)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics":
                self._send(200, metrics.render().encode(), "text/plain; version=0.0.4")
            elif path == "/healthz":
                ok, detail = metrics.healthy()
                body = json.dumps({"status": "ok" if ok else "degraded", **detail}).encode()
                self._send(200 if ok else 503, body, "application/json")
            else:
                self._send(404, b"not found\n", "text/plain")

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as e:
        if e.errno != errno.EADDRINUSE:
            raise
        raise PortInUse(
            f"metrics port {port} is in use on {host}: stop what holds it, or choose another port "
            "(--metrics-port / IOT_METRICS_PORT; 0 turns the endpoint off)"
        ) from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    return server

"""URLs never echo their password, and a malformed store URL is one line on stderr with a non-zero
exit, never a traceback (issue 7, item 10)."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.redact import redact_url
from tests.cli_runner import Result
from tests.keyed_cli import Iot, make_iot
from tests.servers import free_port

PW = "s3kret-Pw"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f"http://u:{PW}@h:1/x", "http://u:***@h:1/x"),
        (f"postgresql+psycopg://iot:{PW}@x@db:5432/iot", "postgresql+psycopg://iot:***@db:5432/iot"),
        (f"mqtt://u:pa/{PW}@h", "mqtt://u:***@h"),
        ("mqtt://user@h:1883", "mqtt://user@h:1883"),
        (
            f"error at 'mongodb://a:{PW}@h1,h2/?authSource=admin&password={PW}'",
            "error at 'mongodb://a:***@h1,h2/?authSource=admin&password=***'",
        ),
        (f"influxdb://h:8086?org=o&token={PW}&bucket=b", "influxdb://h:8086?org=o&token=***&bucket=b"),
        ("embedded", "embedded"),
    ],
)
def test_redact_url(text: str, expected: str) -> None:
    assert redact_url(text) == expected
    assert PW not in redact_url(text)


@pytest.fixture
def iot(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Iot:
    return make_iot(monkeypatch, capsys, tmp_path, f"sqlite:///{tmp_path / 'data' / 'registry.sqlite3'}")


def _one_line(r: Result, code: int) -> None:
    assert r.code == code, r
    assert r.err.startswith("error: ") and len(r.err.strip().splitlines()) == 1, r.err
    assert PW not in r.err + r.out and "Traceback" not in r.err


def test_status_never_echoes_the_password(iot: Iot) -> None:
    r = iot("status", "--url", f"http://u:{PW}@127.0.0.1:{free_port()}")
    _one_line(r, 1)
    assert "http://u:***@127.0.0.1:" in r.err
    _one_line(iot("status", "--url", f"http://u:{PW}@127.0.0.1:notaport"), 2)
    _one_line(iot("status", "--url", "notaurl"), 2)


BAD_REGISTRY_URLS = [
    f"postgresql+psycopg://u:{PW}@localhost:notaport/db",
    f"postgresql+psycopg://u:{PW}@[::1/db",
    f"nosuchdialect://u:{PW}@h/db",
    f"postgresql+nodriver://u:{PW}@h/db",
    "garbage",
]


@pytest.mark.parametrize("url", BAD_REGISTRY_URLS)
@pytest.mark.parametrize(
    "args",
    [
        ["devices", "list"],
        ["registry", "status"],
        ["registry", "migrate"],
        ["alerts", "list"],
        ["deadletters", "list"],
        ["telemetry", "query", "--device", "d1"],
    ],
    ids=lambda a: "-".join(a[:2]),
)
def test_a_malformed_registry_url_is_one_line(
    iot: Iot, monkeypatch: pytest.MonkeyPatch, url: str, args: list[str]
) -> None:
    monkeypatch.setenv("IOT_REGISTRY_URL", url)
    r = iot(*args)
    _one_line(r, 2)
    assert "invalid registry URL" in r.err


@pytest.mark.parametrize(
    "args",
    [
        ["deadletters", "replay", "1", "--broker", f"mqtt://u:{PW}@[::1"],
        ["deadletters", "replay", "1", "--broker", f"mqtt://u:{PW}@h:notaport"],
        ["telemetry", "query", "--device", "d1", "--timeseries", f"influxdb1://u:{PW}@h:notaport/db"],
        ["telemetry", "query", "--device", "d1", "--timeseries", f"nosuch://u:{PW}@h"],
    ],
)
def test_other_malformed_store_urls_are_one_line(iot: Iot, args: list[str]) -> None:
    _one_line(iot(*args), 2)


def test_status_sends_url_credentials_as_basic_auth(iot: Iot) -> None:
    """``user:password@`` goes into an Authorization header (as for a proxy in front of the daemon),
    never into the request line or the output."""
    import base64
    import http.server
    import json
    import threading

    seen: list[tuple[str, str | None]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append((self.path, self.headers.get("Authorization")))
            body = b'{"status": "ok", "broker": "subscribed"}' if self.path == "/healthz" else b"iot_up 1\n"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        r = iot("status", "--json", "--url", f"http://ops:{PW}@127.0.0.1:{server.server_address[1]}/")
    finally:
        server.shutdown()
        server.server_close()
    assert r.code == 0, r.err
    assert json.loads(r.out)["health"]["status"] == "ok" and PW not in r.out + r.err
    expected = "Basic " + base64.b64encode(f"ops:{PW}".encode()).decode()
    assert seen == [("/metrics", expected), ("/healthz", expected)]

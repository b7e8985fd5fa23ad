"""`iot status`: the daemon's /metrics and /healthz, read for a person."""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from ingest.metrics import parse_prometheus

_LABELED = re.compile(r"^(?P<name>[a-z_]+)\{(?P<labels>.*)\}$")
_FIRST_VALUE = re.compile(r'^[a-zA-Z_]+="((?:[^"\\]|\\.)*)"')


def _request(base_url: str, path: str) -> urllib.request.Request:
    """A GET for ``base_url + path``; ``user:password@`` in the URL becomes a Basic auth header
    (urllib would take it for part of the host). ValueError for a URL that is not http(s)://host."""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("use http://host:port or https://host:port")
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port is not None:  # ValueError for a non-numeric port
        netloc += f":{parts.port}"
    url = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + path, "", ""))
    headers = {}
    if parts.username is not None:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
    return urllib.request.Request(url, headers=headers)


def fetch_status(base_url: str, timeout: float = 3.0) -> dict[str, Any]:
    """Health and metrics from a running daemon; raises OSError when it cannot be reached,
    ValueError for an unusable URL."""
    with urllib.request.urlopen(_request(base_url, "/metrics"), timeout=timeout) as r:
        metrics = parse_prometheus(r.read().decode())
    try:
        with urllib.request.urlopen(_request(base_url, "/healthz"), timeout=timeout) as r:
            health = json.loads(r.read())
    except urllib.error.HTTPError as e:  # 503 carries the same JSON body
        health = json.loads(e.read() or b"{}")
    return {"health": health, "metrics": metrics}


def group(metrics: dict[str, float]) -> dict[str, dict[str, float]]:
    """``name{label="x",...}`` → {name: {x: value}} by the first label, summed over the others;
    unlabeled metrics under the key ``""``."""
    out: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        m = _LABELED.match(key)
        if m:
            label = _FIRST_VALUE.match(m.group("labels"))
            by = out.setdefault(m.group("name"), {})
            k = label.group(1) if label else ""
            by[k] = by.get(k, 0.0) + value
        else:
            out.setdefault(key, {})[""] = value
    return out

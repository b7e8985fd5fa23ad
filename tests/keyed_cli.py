"""`iot` run in-process as a given API key, and the checks every scope test makes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from registry.db import migrate
from tests.cli_runner import Result, run_iot

Iot = Callable[..., Result]
DENIED = 3


def registry_url_for(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """For a fixture parametrised ``sqlite`` / ``postgres``: the registry URL to use."""
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'data' / 'registry.sqlite3'}"


def migrated_registry_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """``registry_url_for``, with the registry schema migrated."""
    url = registry_url_for(request, tmp_path)
    migrate(url)
    return url


def make_iot(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path, url: str | None
) -> Iot:
    """``iot(*args, key=K)`` runs `iot ARGS...` in-process with ``IOT_API_KEY=K`` (None: unset), on
    the registry at ``url`` (None: the embedded one of a fresh ``IOT_DATA_DIR``)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IOT_DATA_DIR", str(tmp_path / "data"))
    if url is None:
        monkeypatch.delenv("IOT_REGISTRY_URL", raising=False)
    else:
        monkeypatch.setenv("IOT_REGISTRY_URL", url)
    for var in ("IOT_API_KEY", "IOT_BROKER_PASSWORD", "IOT_TIMESERIES_URL", "IOT_DOCUMENTS_URL", "IOT_NOTIFY_SECRETS"):
        monkeypatch.delenv(var, raising=False)

    def run(*args: str, key: str | None = None) -> Result:
        if key is None:
            monkeypatch.delenv("IOT_API_KEY", raising=False)
        else:
            monkeypatch.setenv("IOT_API_KEY", key)
        return run_iot(monkeypatch, capsys, *args)

    return run


def add_key(iot: Iot, key: str | None, *args: str) -> str:
    """`iot registry keys add ARGS` as ``key``; the new key."""
    r = iot("registry", "keys", "add", *args, key=key)
    assert r.code == 0, r.err
    return r.out.strip()


def denied(r: Result) -> None:
    """Refused with exit 3 and one line on stderr."""
    assert r.code == DENIED, (r.code, r.out, r.err)
    assert r.err.startswith("error: permission denied:") and len(r.err.strip().splitlines()) == 1
    assert "Traceback" not in r.err

"""Footguns a new operator meets on day one, each refused or named in one line (issue: first day)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from iot.cli.toolkit import ExitCode
from tests.cli_runner import Result, run_iot

Iot = Callable[..., Result]


@pytest.fixture
def iot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iot:
    """`iot ARGS...` in-process on a fresh IOT_DATA_DIR with the embedded registry (no IOT_REGISTRY_URL)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IOT_DATA_DIR", str(tmp_path / "data"))
    for var in ("IOT_API_KEY", "IOT_REGISTRY_URL", "IOT_TIMESERIES_URL", "IOT_DOCUMENTS_URL", "IOT_NOTIFY_SECRETS"):
        monkeypatch.delenv(var, raising=False)

    def run(*args: str, key: str | None = None) -> Result:
        if key is None:
            monkeypatch.delenv("IOT_API_KEY", raising=False)
        else:
            monkeypatch.setenv("IOT_API_KEY", key)
        return run_iot(monkeypatch, capsys, *args)

    return run


def test_a_fresh_data_dir_needs_no_registry_migrate(iot: Iot) -> None:
    """The README's promise: the embedded registry migrates itself, in the CLI as in the daemon."""
    r = iot("registry", "keys", "add", "--name", "root", "--role", "admin")
    assert r.code == 0, r.err
    assert r.out.startswith("iotk_")
    assert iot("alerts", "list", key=r.out.strip()).code == 0


def test_the_first_key_must_be_an_unrestricted_admin(iot: Iot) -> None:
    r = iot("registry", "keys", "add", "--name", "vic", "--role", "viewer")
    assert r.code == ExitCode.USAGE
    assert r.err.startswith("error: refusing to create viewer key 'vic' as the first API key")
    assert "--role admin" in r.err
    assert len(r.err.strip().splitlines()) == 1
    r = iot("registry", "keys", "add", "--name", "paris", "--role", "admin", "--site", "paris")
    assert r.code == ExitCode.USAGE and "first API key" in r.err
    admin = iot("registry", "keys", "add", "--name", "root", "--role", "admin")
    assert admin.code == 0, admin.err
    r = iot("registry", "keys", "add", "--name", "vic", "--role", "viewer", key=admin.out.strip())
    assert r.code == 0, r.err

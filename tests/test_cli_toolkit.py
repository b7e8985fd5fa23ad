"""The CLI toolkit: one exit-code table, one error mapping, --version, shell completion."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

from core.stores import StoreUnavailable
from iot.cli.acting import as_cli_error
from iot.cli.toolkit import CliError, ExitCode
from registry.alerts.rules import RuleError
from registry.alerts.store import AlertNotFound, InvalidTransition
from registry.auth import PermissionDenied
from tests.cli_runner import run_iot


def test_version_and_completion(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    r = run_iot(monkeypatch, capsys, "--version")
    assert (r.code, r.out.strip()) == (0, f"iot (polyglot-iot) {version('polyglot-iot')}")
    helped = run_iot(monkeypatch, capsys, "--help")
    assert helped.code == 0 and "--install-completion" in helped.out and "--show-completion" in helped.out


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (PermissionDenied("admin role needed"), ExitCode.DENIED, "permission denied: admin role needed"),
        (InvalidTransition("alert 3 is resolved"), ExitCode.STATE, "alert 3 is resolved"),
        (AlertNotFound("no alert 9"), ExitCode.FAILED, "no alert 9"),
        (RuleError("a threshold rule needs --field"), ExitCode.USAGE, "a threshold rule needs --field"),
        (StoreUnavailable("connection refused\nmore"), ExitCode.FAILED, "StoreUnavailable: connection refused"),
        (CliError("bad", ExitCode.STATE), ExitCode.STATE, "bad"),
    ],
)
def test_one_mapping_from_errors_to_exit_codes(error: Exception, code: ExitCode, line: str) -> None:
    err = as_cli_error(error)
    assert err is not None and (err.code, str(err)) == (code, line)


def test_a_bug_is_not_mapped() -> None:
    assert as_cli_error(RuntimeError("bug")) is None


def test_denied_is_exit_3_through_the_entry_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("IOT_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("IOT_API_KEY", raising=False)
    assert run_iot(monkeypatch, capsys, "registry", "migrate").code == 0
    assert run_iot(monkeypatch, capsys, "registry", "keys", "add", "--name", "a", "--role", "admin").code == 0
    r = run_iot(monkeypatch, capsys, "devices", "list")  # keys exist now: no key, no access
    assert r.code == ExitCode.DENIED and r.err.startswith("error: permission denied") and "Traceback" not in r.err

"""Footguns a new operator meets on day one, each refused or named in one line (issue: first day)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ingest.http import PortInUse, serve_metrics
from ingest.metrics import Metrics
from iot.cli.acting import as_cli_error
from iot.cli.toolkit import ExitCode
from registry.db import RegistryConfigError, make_engine
from tests.keyed_cli import Iot, make_iot
from tests.servers import free_port


@pytest.fixture
def iot(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Iot:
    """`iot ARGS...` in-process on a fresh IOT_DATA_DIR with the embedded registry (no IOT_REGISTRY_URL)."""
    return make_iot(monkeypatch, capsys, tmp_path, None)


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


@pytest.mark.parametrize("argv", [("devices", "list"), ("alerts", "list"), ("registry", "keys", "list")], ids=" ".join)
def test_csv_of_an_empty_list_prints_its_header(iot: Iot, argv: tuple[str, ...]) -> None:
    """A CSV reader needs the header even with no rows; and the header is the rows' keys."""
    r = iot(*argv, "--format", "csv")
    assert r.code == 0, r.err
    header = r.out.splitlines()
    assert len(header) == 1 and header[0].split(",")[0] in ("id", "name")
    admin = iot("registry", "keys", "add", "--name", "root", "--role", "admin").out.strip()
    assert iot("devices", "add", "d1", "--type", "thermostat", key=admin).code == 0
    if argv[0] != "alerts":  # a row now: its keys are the header printed when there were none
        rows = iot(*argv, "--json", key=admin).json()
        assert rows and list(rows[0]) == header[0].split(",")
        assert iot(*argv, "--format", "csv", key=admin).out.splitlines()[0] == header[0]


EVERY_LIST = {  # each list command with --format csv, and a command that gives it a row
    ("alerts", "rules", "list"): ("alerts", "rules", "add", "hot", "--kind", "nodata", "--for", "1m",
                                  "--severity", "info"),
    ("alerts", "channels", "list"): ("alerts", "channels", "add", "ops", "--kind", "webhook",
                                     "--url", "https://h.example/x"),
    ("registry", "audit"): ("devices", "add", "d1", "--type", "thermostat"),
    ("gateways", "list"): ("gateways", "add", "bridge-a", "--prefix", "zigbee2mqtt/#"),
    ("deadletters", "list"): None,  # rows come from the daemon
    ("deadletters", "list", "--payload"): None,
}  # fmt: skip


@pytest.mark.parametrize("argv", list(EVERY_LIST), ids=" ".join)
def test_csv_of_every_empty_list_prints_its_header(iot: Iot, argv: tuple[str, ...]) -> None:
    admin = iot("registry", "keys", "add", "--name", "root", "--role", "admin").out.strip()
    if argv == ("registry", "audit"):  # the key's creation is itself audited: look before it
        argv = (*argv, "--action", "device.")
    r = iot(*argv, "--format", "csv", key=admin)
    assert r.code == 0, r.err
    header = r.out.splitlines()
    assert len(header) == 1 and header[0].split(",")[0] in ("id", "name"), r.out
    if (add := EVERY_LIST.get(argv[:2]) or EVERY_LIST.get(argv[:3])) is not None:
        assert iot(*add, key=admin).code == 0
        rows = iot(*argv, "--json", key=admin).json()
        assert rows and list(rows[0]) == header[0].split(",")
        assert iot(*argv, "--format", "csv", key=admin).out.splitlines()[0] == header[0]


def test_a_busy_metrics_port_is_named() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PortInUse) as caught:
            serve_metrics(Metrics(), "127.0.0.1", port)
    err = as_cli_error(caught.value)
    assert err is not None and err.code == ExitCode.FAILED
    assert str(err).startswith(f"metrics port {port} is in use on 127.0.0.1") and "Errno" not in str(err)


def test_a_postgres_scheme_suggests_the_driver_url() -> None:
    with pytest.raises(RegistryConfigError, match=r"use postgresql\+psycopg://… .*not postgres://") as caught:
        make_engine("postgres://u:hunter2@localhost/iot")
    assert "hunter2" not in str(caught.value)


def test_sim_run_agrees_with_sim_provision_on_prefix_and_profiles(iot: Iot, tmp_path: Path) -> None:
    """`--prefix th` means th-0000… in both; a different prefix or profile mix is named, before connecting."""
    pw = str(tmp_path / "pw.json")
    r = iot("sim", "provision", "-n", "2", "--prefix", "th", "--profile", "thermostat", "--profile", "vibration",
            "--password-file", pw)  # fmt: skip
    assert r.code == 0, r.err
    run = ("sim", "run", "--broker", f"mqtt://127.0.0.1:{free_port()}", "--devices", "2", "--count", "1",
           "--password-file", pw)  # fmt: skip
    mix = ("--profile", "thermostat", "--profile", "vibration")
    for prefix in (("--prefix", "th"), ("--id-prefix", "th"), ("--id-prefix", "th-")):
        r = iot(*run, *prefix, *mix)
        assert r.code == ExitCode.FAILED and r.err.startswith("error: cannot connect"), (prefix, r.err)
    r = iot(*run, *mix)
    assert r.code == ExitCode.USAGE and len(r.err.strip().splitlines()) == 1
    assert r.err.startswith("error: no password for device sim-0000 in ") and "holds --prefix th devices" in r.err
    r = iot(*run, "--prefix", "th", "--profile", "energy")
    assert r.code == ExitCode.USAGE and len(r.err.strip().splitlines()) == 1
    assert r.err == (
        "error: device th-0000 has type thermostat in the registry but --profile gives it energy (and 1 more): "
        "give the provisioned profiles, --profile thermostat --profile vibration\n"
    )


def test_sim_run_on_a_host_without_a_registry_makes_none(iot: Iot, tmp_path: Path) -> None:
    pw = tmp_path / "pw.json"
    pw.write_text('{"th-0000": "s3cret"}')
    r = iot("sim", "run", "--broker", f"mqtt://127.0.0.1:{free_port()}", "--count", "1", "--prefix", "th",
            "--password-file", str(pw))  # fmt: skip
    assert r.code == ExitCode.FAILED and r.err.startswith("error: cannot connect"), r.err
    assert not (tmp_path / "data" / "registry.sqlite3").exists()

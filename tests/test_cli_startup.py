"""What each command's import costs: ``iot --version`` loads Typer and nothing of ours beyond the
entry point; read commands load no store client they do not use (bench/cli_startup_bench.py times it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli_runner import run_iot

STORE_CLIENTS = {"influxdb_client", "pymongo", "montydb", "paho", "amqtt", "matplotlib", "plotext"}
DECODERS = {"google"}  # protobuf, for Sparkplug B: the daemon's and export-mosquitto's, no read command's
HEAVY = STORE_CLIENTS | DECODERS | {"sqlalchemy", "alembic", "pydantic", "pydantic_settings", "rich"}


def _loaded(code: str) -> set[str]:
    """Top-level packages of ``HEAVY`` in ``sys.modules`` after running ``code`` in a fresh interpreter."""
    probe = (
        f"import sys, json\n{code}\n"
        f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r})))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_import_iot_cli_loads_no_store_client_nor_registry() -> None:
    assert _loaded("import iot.cli") == set()


def test_reading_mappings_builds_no_sparkplug_protobuf_classes() -> None:
    """The Sparkplug payload class (google.protobuf, ~45 ms) is built on the first Sparkplug payload."""
    assert _loaded("import ingest.decoding.mappings") == set()
    assert _loaded("from ingest.decoding.sparkplug.proto import payload_class; payload_class()") == {"google"}


def test_version_runs_on_typer_alone() -> None:
    code = (
        "sys.argv = ['iot', '--version']\nfrom iot.cli import main\ntry:\n    main()\nexcept SystemExit as e:\n"
        "    assert e.code == 0, e.code"
    )
    assert _loaded(code) == set()


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("iot.cli.alerts", {"sqlalchemy", "pydantic", "rich"}),  # alerts list, rules list
        ("iot.cli.registry", {"sqlalchemy", "pydantic", "rich"}),  # devices list/show, keys
        ("iot.cli.notify", {"sqlalchemy", "pydantic", "rich"}),  # alerts channels list
        ("iot.cli.telemetry", {"sqlalchemy", "pydantic", "rich"}),  # query (the store: on use)
    ],
)
def test_read_commands_load_no_store_client_at_import(module: str, allowed: set[str]) -> None:
    assert _loaded(f"import {module}") - allowed == set()


def test_every_command_of_the_tree_resolves(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The lazy table loads each sub-app as the group it was: `iot ingest run --help`, not `iot ingest --help`."""
    for argv in (["ingest", "run"], ["sim", "provision"], ["telemetry", "plot"], ["alerts", "channels", "list"],
                 ["alerts", "notifier", "run"], ["registry", "keys", "add"], ["timeseries", "retention"],
                 ["deadletters", "list"], ["devices", "show"], ["demo"], ["status"],
                 ["registry", "export-mosquitto"], ["alerts", "show"], ["alerts", "rules", "add"],
                 ["alerts", "channels", "test"], ["devices", "add"], ["devices", "retire"]):  # fmt: skip
        r = run_iot(monkeypatch, capsys, *argv, "--help")
        assert r.code == 0 and f"iot {' '.join(argv)} [OPTIONS]" in r.out, (argv, r.err)


def test_read_commands_load_neither_the_daemons_http_server_nor_its_metrics() -> None:
    """The CLI's error mapping names a busy metrics port without loading the server (and the routing
    and decoding its metrics import)."""
    wanted = {"ingest.http", "ingest.metrics", "ingest.routing", "ingest.decoding.mappings"}
    probe = (
        f"import sys, iot.cli.acting, iot.cli.registry, iot.cli.alerts\nprint(sorted(set(sys.modules) & {wanted!r}))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True)
    assert done.stdout.strip() == "[]"


NOT_FOR_READING = {
    "sqlalchemy.orm", "sqlalchemy.dialects.postgresql", "alembic", "registry.models", "pydantic_settings",
    "pymongo",  # `devices show` reads the embedded document store: montydb alone
}  # fmt: skip


def _run_loading(argv: list[str], data_dir: Path) -> set[str]:
    """Which of ``NOT_FOR_READING`` (or their submodules) ``iot *argv`` loads, in a fresh interpreter
    on the embedded registry under ``data_dir`` (whatever its exit code: a traceback fails)."""
    probe = (
        f"import sys, json\nsys.argv = ['iot', *{argv!r}]\nfrom iot.cli import main\ntry:\n    main()\n"
        "except SystemExit:\n    pass\n"
        f"print(json.dumps(sorted({{p for p in {sorted(NOT_FOR_READING)!r} for m in sys.modules "
        "if m == p or m.startswith(p + '.')})))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOT_")} | {"IOT_DATA_DIR": str(data_dir)}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_read_commands_on_a_current_embedded_registry_load_neither_the_orm_nor_postgresql_nor_alembic(
    tmp_path: Path,
) -> None:
    """On SQLite at the code's schema, the read commands go through Core: no ORM and no model
    declarations, no PostgreSQL dialect, no Alembic (the schema check reads the version table), no
    pydantic-settings (core.settings_sources reads the environment, .env and IOT_SECRETS_DIR)."""
    assert _run_loading(["devices", "add", "d1", "--site", "s1"], tmp_path) >= {"alembic", "sqlalchemy.orm"}
    for argv in (
        ["alerts", "list"],
        ["alerts", "rules", "list"],
        ["alerts", "channels", "list"],
        ["devices", "list"],
        ["devices", "show", "d1"],
        ["registry", "keys", "list"],
        ["registry", "audit"],
        ["deadletters", "list"],
        ["telemetry", "query", "--device", "d1"],
    ):
        assert _run_loading(argv, tmp_path) == set(), argv

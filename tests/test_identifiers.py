"""Identifiers are checked whole (``fullmatch``) against one strict charset (issue 7, item 6): a
trailing newline or backslash never reaches the registry, the broker files or a tag."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from registry.db import make_engine
from registry.identifiers import check_labels, check_name
from registry.models import Device
from tests.keyed_cli import Iot, make_iot
from tests.servers import Mosquitto, find_binary, wait_for

BAD_NAMES = ["evil\n", "evil\r", "a b", "A\\", "x\nuser evil", "#", "a/b", "+", "", "x" * 65, "é", "a\x00"]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_bad_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"^invalid site .*: 1-64 characters of \[A-Za-z0-9_.:-\]$"):
        check_name("site", bad)


def test_good_names_and_labels_pass() -> None:
    assert check_name("device id", "sim-0001:a_b.c") == "sim-0001:a_b.c"
    assert check_labels({"room": "Hall 7 (east) #2", "simulated": True, "floor": 3}) == {
        "room": "Hall 7 (east) #2",
        "simulated": True,
        "floor": 3,
    }
    for bad in ({"room": "x\n"}, {"room": "back\\"}, {"room": 'q"'}, {"bad key": "v"}, {"k": [1]}):
        with pytest.raises(ValueError, match="label"):
            check_labels(bad)


@pytest.fixture
def iot(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Iot:
    run = make_iot(monkeypatch, capsys, tmp_path, f"sqlite:///{tmp_path / 'data' / 'registry.sqlite3'}")
    assert run("registry", "migrate").code == 0
    return run


@pytest.mark.parametrize(
    "args",
    [
        ["devices", "add", "evil\n", "--with-secret"],
        ["devices", "add", "ok", "--site", "A\n"],
        ["devices", "add", "ok", "--site", "A\\"],
        ["devices", "add", "ok", "--type", "t\nuser x"],
        ["devices", "add", "ok", "--label", "k=v\n"],
        ["devices", "add", "ok", "--label", "k\n=v"],
        ["sim", "provision", "-n", "1", "--site", "A\n"],
        ["sim", "provision", "-n", "1", "--profile", "thermostat\n"],
        ["registry", "keys", "add", "--name", "k\n", "--role", "viewer"],
        ["registry", "keys", "add", "--name", "k", "--role", "viewer", "--site", "A\n"],
    ],
)
def test_cli_refuses_bad_identifiers_with_one_line(iot: Iot, args: list[str]) -> None:
    r = iot(*args)
    assert r.code == 2, (r.code, r.out, r.err)
    assert r.err.startswith("error: ") and len(r.err.strip().splitlines()) == 1
    assert "Traceback" not in r.err and "secret" not in r.out
    listed = iot("devices", "list", "--json").json()
    assert listed == []


@pytest.mark.mosquitto
def test_after_refused_identifiers_the_exported_files_start_mosquitto(iot: Iot, tmp_path: Path) -> None:
    if find_binary("mosquitto") is None:
        pytest.skip("mosquitto not found: apt-get install mosquitto")
    assert iot("devices", "add", "evil\n", "--with-secret").code == 2
    assert iot("devices", "add", "good", "--site", "A", "--label", "room=Hall 7", "--with-secret").code == 0
    pw = tmp_path / "ingest.pw"
    pw.write_text("ingest-pw\n")
    out = tmp_path / "broker"
    export = ("registry", "export-mosquitto", "--dir", str(out), "--ingest-password-file", str(pw))
    r = iot(*export, "--ingest-user", "a\nb")
    assert r.code == 2 and len(r.err.strip().splitlines()) == 1
    r = iot(*export)
    assert r.code == 0, r.err
    server = Mosquitto(tmp_path / "mosquitto", extra_conf=(out / "listener.conf").read_text())
    server.start()  # raises when mosquitto exits (it did, with code 3, on an ACL line "user evil\n")
    try:
        wait_for(lambda: "mosquitto version" in server.log.read_text() and server.proc is not None, 10, "the log")
        assert server.proc is not None and server.proc.poll() is None
    finally:
        server.stop()


def test_a_bad_id_written_before_the_fix_stops_the_export_not_the_broker(iot: Iot, tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from registry import credentials

    engine = make_engine(f"sqlite:///{tmp_path / 'data' / 'registry.sqlite3'}")
    with Session(engine) as s:
        s.add(
            Device(
                id="legacy\n", type="generic", site=None, labels={}, status="active", online=False,
                created_at=datetime.now(UTC), secret_hash=credentials.hash_mosquitto("x"),
            )
        )  # fmt: skip
        s.commit()
    engine.dispose()
    pw = tmp_path / "ingest.pw"
    pw.write_text("ingest-pw\n")
    r = iot("registry", "export-mosquitto", "--dir", str(tmp_path / "broker"), "--ingest-password-file", str(pw))
    assert r.code == 2 and "invalid device id 'legacy\\n'" in r.err and "retire it" in r.err
    assert len(r.err.strip().splitlines()) == 1
    assert not (tmp_path / "broker" / "acl").exists()

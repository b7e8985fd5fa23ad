"""`iot registry export-mosquitto --owner USER`: the broker files (still 0600) belong to the user a
Mosquitto started as root drops to; an impossible owner is one line and nothing written."""

from __future__ import annotations

import os
import pwd
import stat
from pathlib import Path

import pytest

from tests.keyed_cli import Iot, make_iot


@pytest.fixture
def iot(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> Iot:
    run = make_iot(monkeypatch, capsys, tmp_path, f"sqlite:///{tmp_path / 'data' / 'registry.sqlite3'}")
    monkeypatch.setenv("IOT_BROKER_PASSWORD", "ingest-pw")
    assert run("registry", "migrate").code == 0
    assert run("devices", "add", "d1", "--with-secret").code == 0
    return run


@pytest.mark.skipif(os.geteuid() != 0, reason="handing files to another user needs root")
def test_the_files_go_to_the_owner_mode_0600(iot: Iot, tmp_path: Path) -> None:
    mosquitto = pwd.getpwnam("mosquitto")
    r = iot("registry", "export-mosquitto", "--dir", str(tmp_path / "broker"), "--owner", "mosquitto")
    assert r.code == 0, r.err
    for name in ("passwd", "acl", "listener.conf"):
        st = (tmp_path / "broker" / name).stat()
        assert (st.st_uid, st.st_gid) == (mosquitto.pw_uid, mosquitto.pw_gid), name
        assert stat.S_IMODE(st.st_mode) == 0o600, name


def test_an_unknown_owner_is_one_line_and_nothing_is_written(iot: Iot, tmp_path: Path) -> None:
    r = iot("registry", "export-mosquitto", "--dir", str(tmp_path / "broker"), "--owner", "no-such-user")
    assert r.code == 2, (r.code, r.err)
    assert r.err.strip() == "error: --owner no-such-user: no such user on this machine"
    assert not (tmp_path / "broker").exists()

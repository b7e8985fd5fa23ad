"""The README's "Without Docker" quickstart, line by line, against real PostgreSQL, influxd and the
Debian mosquitto (started by the quickstart itself, as the README says): the commands are read from
the README, so the two cannot drift, and the alert the quickstart promises must fire.

Conventions the README block keeps (and this runner relies on): one command per line; ``export
NAME=VALUE`` sets a variable for the lines after it (the test's own value for the servers it
started); a line ending in ``&`` starts a server that runs until the end; a line whose comment
starts with ``# until`` is repeated until it exits 0 (with a deadline).
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers import Influxd, Postgres, find_binary, free_port, wait_for

README = Path(__file__).resolve().parent.parent / "README.md"
EXPORT = re.compile(r"export ([A-Z_][A-Z0-9_]*)=(.*)")
COMMENT = re.compile(r"\s+#\s.*$")

pytestmark = [pytest.mark.mosquitto, pytest.mark.postgres, pytest.mark.influxd]


def quickstart_lines() -> list[str]:
    """The lines of the first ``sh`` block under "## Without Docker" (comments kept)."""
    text = README.read_text()
    section = text.split("\n## Without Docker\n", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("\n```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


class Runner:
    """Runs quickstart lines in ``cwd`` with an environment it carries from line to line."""

    def __init__(self, cwd: Path, env: dict[str, str], fixed: dict[str, str]) -> None:
        self.cwd, self.env, self.fixed = cwd, env, fixed
        self.background: list[subprocess.Popen[bytes]] = []

    def sh(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", "-euo", "pipefail", "-c", command],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def run(self, line: str) -> subprocess.CompletedProcess[str] | None:
        until = bool(re.search(r"\s#\s+until\b", line))
        command = COMMENT.sub("", line).strip()
        if m := EXPORT.fullmatch(command):
            name = m.group(1)
            if name in self.fixed:
                self.env[name] = self.fixed[name]
                return None
            done = self.sh(f'{command}\nprintf %s "${name}"')
            assert done.returncode == 0, (command, done.stderr)
            self.env[name] = done.stdout
            return None
        if command.endswith("&"):
            log = (self.cwd / f"background-{len(self.background)}.log").open("ab")
            self.background.append(
                subprocess.Popen(
                    ["bash", "-c", "exec " + command[:-1].strip()],
                    cwd=self.cwd,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
            log.close()
            return None
        if until:
            wait_for(lambda: self.sh(command).returncode == 0, 90, f"`{command}` to succeed", interval=0.5)
        done = self.sh(command)
        assert done.returncode == 0, (command, done.stdout, done.stderr, self.logs())
        return done

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-2000:] for p in sorted(self.cwd.glob("background-*.log")))

    def stop(self) -> None:
        for proc in reversed(self.background):  # the daemon first, then the broker
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def _reachable_by_others(path: Path) -> None:
    """As root, Mosquitto reads the exported files as its own user: let it traverse down to them."""
    if os.geteuid() != 0:
        return
    for p in [path, *path.parents]:
        st = p.stat()
        if not st.st_mode & 0o001:
            os.chmod(p, st.st_mode | 0o011)


@pytest.fixture
def runner(tmp_path: Path) -> Iterator[Runner]:
    for binary, package in (("mosquitto", "mosquitto"), ("pg_ctl", "postgresql"), ("influxd", "influxdb")):
        if find_binary(binary) is None:
            pytest.skip(f"{binary} not found: apt-get install {package}")
    postgres = Postgres(tmp_path / "postgres").start()
    influxd = Influxd(tmp_path / "influxd").start()
    work = tmp_path / "quickstart"
    work.mkdir()
    _reachable_by_others(work)
    env = {k: v for k, v in os.environ.items() if not k.startswith("IOT_")}
    env["PATH"] = f"{Path(sys.executable).parent}:{os.path.dirname(find_binary('mosquitto') or '')}:{env['PATH']}"
    env["IOT_METRICS_PORT"] = str(free_port())  # not the default 9108 another daemon may hold
    fixed = {
        "IOT_REGISTRY_URL": postgres.create_database("quickstart"),
        "IOT_TIMESERIES_URL": f"influxdb1://127.0.0.1:{influxd.port}/quickstart",
        "MQTT_PORT": str(free_port()),
    }
    r = Runner(work, env, fixed)
    try:
        yield r
    finally:
        r.stop()
        influxd.stop()
        postgres.stop()


def test_the_readme_quickstart_fires_an_alert(runner: Runner) -> None:
    lines = quickstart_lines()
    assert 10 <= len(lines) <= 20, lines
    rule = shlex.split(next(line for line in lines if "alerts rules add" in line))[4]
    listing = next(i for i, line in enumerate(lines) if line.startswith("iot alerts list"))
    for line in lines[:listing]:
        runner.run(line)
    assert set(runner.fixed) <= set(runner.env)  # every server the README names got the test's

    def fired() -> bool:
        done = runner.run(lines[listing])
        return done is not None and all(f"sim-000{i}" in done.stdout for i in range(3)) and rule in done.stdout

    wait_for(fired, 60, f"the alert {rule!r} on the three devices", interval=0.5)
    for line in lines[listing + 1 :]:
        done = runner.run(line)
        if line.startswith("iot telemetry query"):
            assert done is not None and all(f"sim-000{i}" in done.stdout for i in range(3)), done
    assert all(p.poll() is None for p in runner.background), runner.logs()  # broker and daemon still up

"""Throwaway real servers for tests: mosquitto, PostgreSQL and influxd on free ports in temp dirs.

Each class starts a server from the binary on PATH, waits on a readiness condition with a
deadline (never a fixed sleep), and can be stopped, killed and started again on the same port
and data directory, so fault-injection tests can take a server away and bring it back.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import random
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

PG_BIN_DIRS = [Path(p) for p in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_port_block(n: int) -> int:
    """The first of ``n`` consecutive ports that are free now, below the kernel's ephemeral range
    (a client's outgoing connection takes its local port from that range at any time, so a block
    chosen inside it can be taken between the check and the bind: ``--workers`` serves metrics on
    ``port + k``)."""
    low, _high = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(10_000, low - n)
        socks: list[socket.socket] = []
        try:
            for k in range(n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + k))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError(f"no {n} consecutive free ports")


def wait_for(cond: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def find_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for d in [*PG_BIN_DIRS, Path("/usr/sbin"), Path("/usr/bin")]:
        if (d / name).exists():
            return str(d / name)
    return None


class _Process:
    name = "server"
    proc: subprocess.Popen[bytes] | None = None
    port = 0

    def _spawn(self, args: list[str], log: Path) -> None:
        out = log.open("ab")
        self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        out.close()

    def _ready(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log}")
        return port_open(self.port)

    log: Path

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


class Mosquitto(_Process):
    """mosquitto with persistence, unlimited queues and in-flight window, anonymous access."""

    name = "mosquitto"

    def __init__(self, workdir: Path, extra_conf: str = "") -> None:
        self.binary = find_binary("mosquitto")
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = self.dir / "mosquitto.log"
        self.conf = self.dir / "mosquitto.conf"
        self.extra_conf = extra_conf

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def write_conf(self) -> None:
        anonymous = "" if "allow_anonymous" in self.extra_conf else "allow_anonymous true\n"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n{anonymous}"
            f"persistence true\npersistence_location {self.dir}/\n"
            "autosave_interval 1\n"
            "max_inflight_messages 0\nmax_queued_messages 0\nmax_queued_bytes 0\n"
            "user root\n"
            f"{self.extra_conf}\n"
        )

    def start(self) -> Mosquitto:
        assert self.binary
        self.write_conf()
        self._spawn([self.binary, "-c", str(self.conf)], self.log)
        wait_for(self._ready, 15, "mosquitto to listen")
        return self


class Postgres(_Process):
    """A PostgreSQL cluster made by initdb (as the postgres user when we are root)."""

    name = "postgres"

    def __init__(self, workdir: Path) -> None:
        self.bindir = Path(find_binary("pg_ctl") or "pg_ctl").resolve().parent
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data = self.dir / "data"
        self.sock = self.dir / "sock"
        self.log = self.dir / "postgres.log"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        self._initdb()

    def _run(self, args: list[str]) -> None:
        if self.as_root:
            args = ["runuser", "-u", "postgres", "--", *args]
        done = subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if done.returncode:
            raise RuntimeError(f"{args[-1] if args else ''} failed: {done.stderr.decode()[-500:]}")

    def _initdb(self) -> None:
        self.sock.mkdir(exist_ok=True)
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            for p in [self.dir, self.sock]:
                os.chown(p, pw.pw_uid, pw.pw_gid)
            for parent in self.dir.resolve().parents:  # let postgres traverse down to us
                st = parent.stat()
                if st.st_uid == 0 and not st.st_mode & 0o001:
                    os.chmod(parent, st.st_mode | 0o011)
        self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ]
        )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> Postgres:
        opts = (
            f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            [
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-o",
                opts,
                "-w",
                "-t",
                "60",
                "start",
            ]
        )
        return self

    def create_database(self, name: str) -> str:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def kill(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._run([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop"])


class Influxd(_Process):
    """influxd 1.x (the 1.x HTTP API: /write, /query, /ping)."""

    name = "influxd"

    def __init__(self, workdir: Path) -> None:
        self.binary = find_binary("influxd")
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.rpc_port = free_port()
        self.log = self.dir / "influxd.log"
        self.conf = self.dir / "influxdb.conf"
        d = self.dir
        self.conf.write_text(
            f'reporting-disabled = true\nbind-address = "127.0.0.1:{self.rpc_port}"\n'
            f'[meta]\n  dir = "{d}/meta"\n'
            f'[data]\n  dir = "{d}/data"\n  wal-dir = "{d}/wal"\n  query-log-enabled = false\n'
            '  wal-fsync-delay = "0s"\n'
            f'[http]\n  bind-address = "127.0.0.1:{self.port}"\n  log-enabled = false\n'
            "  max-body-size = 0\n"
            "[monitor]\n  store-enabled = false\n"
            "[continuous_queries]\n  enabled = false\n"
        )

    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, db: str) -> str:
        return f"influxdb1://127.0.0.1:{self.port}/{db}"

    def _ping(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"influxd exited with {self.proc.returncode}; see {self.log}")
        try:
            with urllib.request.urlopen(self.base() + "/ping", timeout=1) as r:
                return bool(r.status == 204)
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> Influxd:
        assert self.binary
        self._spawn([self.binary, "-config", str(self.conf)], self.log)
        wait_for(self._ping, 30, "influxd to answer /ping")
        return self

    def query(self, q: str, db: str | None = None) -> dict[str, Any]:
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        data = urllib.parse.urlencode(params).encode()
        with urllib.request.urlopen(self.base() + "/query", data=data, timeout=30) as r:
            result: dict[str, Any] = json.loads(r.read())
            return result

    def create_database(self, name: str) -> str:
        self.query(f'CREATE DATABASE "{name}"')
        return self.url(name)

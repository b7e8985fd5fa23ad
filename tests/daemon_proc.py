"""The real `iot ingest run` as a subprocess, for end-to-end and fault-injection tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

from ingest.metrics import parse_prometheus
from tests.servers import free_port, free_port_block, wait_for


class DaemonProcess:
    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        workers = int(env.get("IOT_WORKERS", "1"))
        # worker k serves metrics on port + k, the evaluator on port + N
        self.port = free_port() if workers == 1 else free_port_block(workers + 1)
        self.env = {
            **os.environ,
            "IOT_DATA_DIR": str(workdir / "data"),
            "IOT_METRICS_PORT": str(self.port),
            "IOT_FLUSH_INTERVAL": "0.2",
            **env,
        }
        self.log = workdir / "daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def on_root(
        cls,
        workdir: Path,
        broker_url: str,
        root: str,
        *,
        timeseries: str = "embedded",
        registry: str | None = None,
        **extra: str,
    ) -> DaemonProcess:
        """A daemon on its own topic root (client id ``ingest-{root}``), embedded document store;
        ``extra`` settings (``IOT_...``) are added or override."""
        env = {
            "IOT_BROKER_URL": broker_url,
            "IOT_TIMESERIES_URL": timeseries,
            "IOT_DOCUMENTS_URL": "embedded",
            "IOT_CLIENT_ID": f"ingest-{root}",
            "IOT_TOPIC_ROOT": root,
            **({"IOT_REGISTRY_URL": registry} if registry is not None else {}),
            **extra,
        }
        return cls(workdir, env)

    def start(self, timeout: float = 30, subscribed: bool = True) -> DaemonProcess:
        """Start it and (unless ``subscribed`` is False) wait until it has subscribed."""
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "iot", "ingest", "run"], env=self.env, stdout=out, stderr=subprocess.STDOUT
        )
        out.close()
        if not subscribed:
            wait_for(lambda: self._alive() and bool(self.metrics()), timeout, "the daemon's metrics endpoint")
            return self
        wait_for(
            lambda: self._alive() and self.metrics().get("iot_broker_subscribed") == 1.0,
            timeout,
            "the daemon to subscribe",
        )
        return self

    def _alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
        return True

    def metrics(self) -> dict[str, float]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
                return parse_prometheus(r.read().decode())
        except (urllib.error.URLError, OSError):
            return {}

    def terminate(self, timeout: float = 90) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout)
        self.proc = None
        return rc

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def output(self) -> str:
        return self.log.read_text()

"""Session-wide real servers; each test gets its own database/bucket/topic namespace."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.notify_servers import HttpReceiver, SmtpServer, smtp_server
from tests.servers import Influxd, Mosquitto, Postgres, find_binary


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--soak", action="store_true", help="run the long soak variants")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--soak"):
        return
    skip = pytest.mark.skip(reason="soak test: run with --soak (see README)")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)


def _require(binary: str, package: str) -> None:
    if find_binary(binary) is None:
        pytest.skip(f"{binary} not found: apt-get install {package}")


@pytest.fixture(scope="session")
def mosquitto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    _require("mosquitto", "mosquitto")
    server = Mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield server
    server.stop()


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A private mosquitto for tests that stop, kill or reconfigure the broker."""
    _require("mosquitto", "mosquitto")
    server = Mosquitto(tmp_path / "mosquitto").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Postgres]:
    _require("pg_ctl", "postgresql")
    base = tmp_path_factory.mktemp("postgres")
    server = Postgres(base).start()
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: Postgres) -> str:
    """A fresh, empty database on the session's PostgreSQL."""
    return postgres_server.create_database("t_" + uuid.uuid4().hex[:12])


@pytest.fixture(scope="session")
def influxd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Influxd]:
    _require("influxd", "influxdb")
    server = Influxd(tmp_path_factory.mktemp("influxd")).start()
    yield server
    server.stop()


@pytest.fixture
def influxdb1_url(influxd_server: Influxd) -> str:
    """A fresh database on the session's influxd, as an ``influxdb1://`` URL."""
    return influxd_server.create_database("t_" + uuid.uuid4().hex[:12])


@pytest.fixture
def influxdb2_url() -> str:
    url = os.environ.get("IOT_TEST_INFLUXDB_URL")
    if not url:
        pytest.skip("no InfluxDB 2.x/3.x here: set IOT_TEST_INFLUXDB_URL (+ IOT_INFLUXDB_TOKEN)")
    return url


@pytest.fixture
def mongodb_url() -> str:
    url = os.environ.get("IOT_TEST_MONGODB_URL")
    if not url:
        pytest.skip("no MongoDB server here: set IOT_TEST_MONGODB_URL to run against one")
    return url


@pytest.fixture
def influxd(tmp_path: Path) -> Iterator[Influxd]:
    """A private influxd for tests that stop or kill the time-series store."""
    _require("influxd", "influxdb")
    server = Influxd(tmp_path / "influxd").start()
    yield server
    server.stop()


@pytest.fixture
def postgres(tmp_path: Path) -> Iterator[Postgres]:
    """A private PostgreSQL cluster for tests that stop or kill the registry database."""
    _require("pg_ctl", "postgresql")
    server = Postgres(tmp_path / "postgres").start()
    yield server
    server.stop()


# -- notification receivers (tests of the notifier's transports) ------------------------------------
@pytest.fixture
def http_receiver() -> Iterator[HttpReceiver]:
    r = HttpReceiver().start()
    yield r
    r.stop()


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpServer]:
    with smtp_server(tmp_path) as server:
        yield server

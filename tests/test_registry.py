"""Registry schema (Alembic) and the daemon's directory, on SQLite and a real PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.model import StatusChange
from core.stores import StoreUnavailable
from registry.db import (
    SchemaNotMigrated,
    alembic_head,
    check_migrated,
    current_revision,
    head_revision,
    make_engine,
    migrate,
)
from registry.directory import DeviceInfo, RegistryStore
from registry.models import Alert, AlertRule, Base, Device
from registry.notify import models as _notify_models  # noqa: F401  (its tables join Base.metadata)
from tests.servers import free_port


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{tmp_path / 'registry.sqlite3'}"


@pytest.fixture
def engine(empty_url: str) -> Iterator[Engine]:
    eng = make_engine(empty_url)
    migrate(eng)
    yield eng
    eng.dispose()


def _utc(ts: datetime | None) -> datetime | None:
    return ts.replace(tzinfo=UTC) if ts is not None and ts.tzinfo is None else ts


def test_check_migrated_refuses_an_empty_database(empty_url: str) -> None:
    eng = make_engine(empty_url)
    try:
        with pytest.raises(SchemaNotMigrated, match=r"at empty, code needs .*iot registry migrate"):
            check_migrated(eng)
        assert current_revision(eng) is None
    finally:
        eng.dispose()


def test_migrations_up_from_empty_match_the_models(empty_url: str) -> None:
    eng = make_engine(empty_url)
    try:
        assert migrate(eng) == head_revision()
        check_migrated(eng)
        tables = set(inspect(eng).get_table_names())
        assert set(Base.metadata.tables) <= tables
        with eng.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        assert migrate(eng) == head_revision()  # idempotent
    finally:
        eng.dispose()


def test_revisions_read_directly_agree_with_alembic(empty_url: str) -> None:
    """Commands read the head from the scripts and the current revision from its table, without
    Alembic's loader: both answer as Alembic would."""
    assert head_revision() == alembic_head()
    eng = make_engine(empty_url)
    try:
        for target in ("0001", "head"):
            migrate(eng, target)
            with eng.connect() as conn:
                assert current_revision(eng) == MigrationContext.configure(conn).get_current_revision()
    finally:
        eng.dispose()


def test_migration_behind_head_is_refused(empty_url: str) -> None:
    eng = make_engine(empty_url)
    try:
        migrate(eng, "0001")
        if head_revision() == "0001":
            pytest.skip("only one migration so far")
        with pytest.raises(SchemaNotMigrated, match=r"at 0001, code needs"):
            check_migrated(eng)
    finally:
        eng.dispose()


def test_one_open_alert_per_rule_and_device(engine: Engine) -> None:
    now = datetime.now(UTC)
    with Session(engine) as s:
        rule = AlertRule(name="hot", kind="threshold", severity="major", created_at=now)
        s.add(rule)
        s.flush()

        def alert(status: str) -> Alert:
            return Alert(
                rule_id=rule.id, device_id="d1", severity="major", status=status, opened_at=now, last_seen_at=now
            )

        s.add_all([alert("resolved"), alert("resolved"), alert("open")])
        s.commit()
        s.add(alert("acknowledged"))
        with pytest.raises(IntegrityError):
            s.commit()


def test_directory_register_snapshot_and_activity(engine: Engine) -> None:
    store = RegistryStore(engine)
    store.connect()
    with Session(engine) as s:
        s.add(
            Device(
                id="p1",
                type="thermostat",
                site="plant",
                labels={},
                status="provisioned",
                online=False,
                created_at=datetime.now(UTC),
            )
        )
        s.add(
            Device(
                id="x1",
                type="energy",
                site=None,
                labels={},
                status="disabled",
                online=False,
                created_at=datetime.now(UTC),
            )
        )
        s.commit()
    store.register([("auto1", "vibration"), ("p1", "other")])
    store.register([("auto1", "changed")])
    assert store.devices() == {
        "p1": DeviceInfo("p1", "thermostat", "plant", "provisioned"),
        "x1": DeviceInfo("x1", "energy", None, "disabled"),
        "auto1": DeviceInfo("auto1", "vibration", None, "active"),
    }

    t = time.time()
    store.record_activity({"p1": t, "x1": t, "ghost": t}, [StatusChange("auto1", True, t - 5)])
    store.record_activity({"p1": t - 100}, [StatusChange("auto1", False, t - 1), StatusChange("auto1", True, t - 2)])
    store.record_firmware({"p1": "2.1.0", "ghost": "9"})
    with Session(engine) as s:
        p1, x1, auto1 = (s.get(Device, i) for i in ("p1", "x1", "auto1"))
        assert p1 and x1 and auto1
        assert p1.status == "active" and p1.firmware_version == "2.1.0"
        assert x1.status == "disabled"  # only provisioned devices become active
        p1_seen = _utc(p1.last_seen_at)
        assert p1_seen is not None and abs(p1_seen.timestamp() - t) < 1e-3  # never backwards
        assert auto1.online is False  # the latest change wins, whatever the order given
        assert s.get(Device, "ghost") is None
    store.close()


def test_status_changes_from_several_workers_commute(engine: Engine) -> None:
    """Workers write online/offline reports in any order: the newest report wins in every order,
    like one worker writing them sorted; last seen only moves forward."""
    store = RegistryStore(engine)
    store.connect()
    store.register([("w1", "thermo")])
    t = time.time()
    reports = [
        ({"w1": t - 30}, [StatusChange("w1", True, t - 20)]),  # worker A: came online
        ({"w1": t - 10}, [StatusChange("w1", False, t - 5)]),  # worker B: went offline (newest)
        ({"w1": t - 40}, [StatusChange("w1", True, t - 15)]),  # worker C: a stale online report
    ]
    finals = set()
    for order in ((0, 1, 2), (2, 1, 0), (1, 0, 2), (1, 2, 0)):
        with engine.begin() as conn:
            conn.execute(update(Device).values(online=False, online_at=None, last_seen_at=None))
        for i in order:
            store.record_activity(*reports[i])
        with Session(engine) as s:
            d = s.get(Device, "w1")
            assert d is not None
            seen, at = _utc(d.last_seen_at), _utc(d.online_at)
            assert seen is not None and at is not None
            finals.add((d.online, round(seen.timestamp(), 3), round(at.timestamp(), 3)))
    assert finals == {(False, round(t - 5, 3), round(t - 5, 3))}, finals
    store.close()


def test_directory_refuses_unmigrated_schema(empty_url: str) -> None:
    store = RegistryStore(make_engine(empty_url))
    with pytest.raises(SchemaNotMigrated):
        store.connect()
    store.close()


@pytest.mark.postgres
def test_directory_unreachable_postgres_is_store_unavailable() -> None:
    store = RegistryStore(make_engine(f"postgresql+psycopg://u@127.0.0.1:{free_port()}/x"))
    with pytest.raises(StoreUnavailable, match="registry unreachable"):
        store.connect()
    with pytest.raises(StoreUnavailable):
        store.devices()
    store.close()


def test_record_activity_with_nothing_is_a_no_op(engine: Engine) -> None:
    store = RegistryStore(engine)
    store.connect()
    store.record_activity({}, [])
    with Session(engine) as s:
        assert s.scalars(select(Device)).all() == []
    store.close()

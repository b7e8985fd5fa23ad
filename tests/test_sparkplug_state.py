"""The kept Sparkplug state (in memory, and in the registry table the workers share): a node birth
forgets only the device births made before it, since with ``--workers N`` a device's birth may be
filed before its node's by another worker."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.sparkplug import BirthRecord, MetricInfo, SparkplugState
from ingest.decoding.sparkplug.state import MemoryState
from registry.db import make_engine, migrate
from registry.sparkplug import SqlSparkplugState

NODE, DEV = "g:e", "g:e:pump"
T = 1_764_000_000.0


@pytest.fixture(params=["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SparkplugState]:
    if request.param == "memory":
        yield MemoryState()
        return
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else f"sqlite:///{tmp_path}/r.db"
    engine = make_engine(str(url))
    migrate(engine)
    yield SqlSparkplugState(engine, revalidate_s=0.0)
    engine.dispose()


def record(alias: int, bd_seq: int | None = None) -> BirthRecord:
    info = MetricInfo("temp", 10)
    return BirthRecord({alias: info}, {"temp": info}, bd_seq)


def test_a_node_birth_filed_after_its_devices_birth_keeps_it(state: SparkplugState) -> None:
    state.born(NODE, DEV, record(1), T + 0.001)  # the DBIRTH, filed first by one worker
    state.born(NODE, None, record(9, bd_seq=3), T)  # its NBIRTH, filed late by another
    kept = state.birth(NODE, DEV)
    assert kept is not None and set(kept.aliases) == {1}
    assert state.devices(NODE) == [DEV]
    state.born(NODE, None, record(9, bd_seq=4), T + 1)  # a later session: the device must be born again
    assert state.birth(NODE, DEV) is None
    assert state.devices(NODE) == []
    node = state.birth(NODE, None)
    assert node is not None and node.bd_seq == 4


@pytest.mark.postgres
def test_the_same_birth_filed_by_several_processes_at_once_is_kept_once(postgres_url: str) -> None:
    """A worker and the alert evaluator both decode a birth and file it at the same moment: each
    filing succeeds (no IntegrityError turning the birth into a dead letter) and one row stays."""

    migrate(postgres_url)
    engines = [make_engine(postgres_url) for _ in range(6)]
    try:
        states = [SqlSparkplugState(e) for e in engines]
        errors: list[BaseException] = []
        for round_ in range(20):
            barrier = threading.Barrier(len(states))

            def file(s: SqlSparkplugState, k: int, r: int = round_, b: threading.Barrier = barrier) -> None:
                b.wait()
                try:
                    s.born("g:e", "g:e:d", record(7 + k), 1000.0 + r)
                except BaseException as e:  # what a decode would turn into a dead letter
                    errors.append(e)

            threads = [threading.Thread(target=file, args=(s, k)) for k, s in enumerate(states)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(30)
        assert errors == []
        fresh = SqlSparkplugState(engines[0])
        born = fresh.birth("g:e", "g:e:d")
        assert born is not None and len(born.aliases) == 1
    finally:
        for e in engines:
            e.dispose()

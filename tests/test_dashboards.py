"""The Grafana dashboards and the compose stack that serves them, checked against what the pipeline
really writes: a demo run (embedded broker, daemon, stores) supplies the measurements, fields,
tags and Prometheus metrics; every SQL panel runs against the real migrated PostgreSQL schema.
(Grafana itself cannot run here.)"""

from __future__ import annotations

import json
import re
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import text

from core.metricdefs import METRICS
from ingest.metrics import parse_prometheus
from iot.cli.toolkit import settings
from iot.demo import run_demo
from simulators.profiles import PROFILES
from tests.faultkit import Pipeline, expected_letters, expected_readings
from tests.servers import Influxd, Mosquitto

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
DATASOURCES = ROOT / "deploy/grafana/provisioning/datasources/datasources.yml"
COMPOSE = ROOT / "docker-compose.yml"
SAMPLE_DEVICE = "sim-0000"


@dataclass(frozen=True)
class Written:
    """What one real pipeline run wrote."""

    fields: set[tuple[str, str]]  # (measurement, field)
    tags: set[str]
    metrics: dict[str, set[str]]  # metric name -> label names seen


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Written:
    data = tmp_path_factory.mktemp("dash")
    r = run_demo(settings(data_dir=data), duration=4, devices=4, rate=10, seed=7)
    assert r.complete and r.malformed_sent > 0, "the run exercised dead letters too"
    db = sqlite3.connect(Path(r.data_dir) / "timeseries.sqlite3")
    fields = {(m, f) for m, f, _ in db.execute("SELECT measurement, field, type FROM field_types")}
    tags = {"device_id"}
    for (t,) in db.execute("SELECT DISTINCT tags FROM points"):
        tags |= set(json.loads(t))
    db.close()
    metrics: dict[str, set[str]] = {}
    for key in parse_prometheus(r.metrics_text):
        name = key.split("{", 1)[0]
        labels = set(re.findall(r'(\w+)="', key))
        metrics.setdefault(name, set()).update(labels)
    return Written(fields, tags, metrics)


def _dashboards() -> list[tuple[str, dict[str, Any]]]:
    return [(p.name, json.loads(p.read_text())) for p in DASHBOARDS]


TYPES = {"prometheus": "prometheus", "influx": "influxdb", "sql": "grafana-postgresql-datasource"}


def _targets(kind: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for name, d in _dashboards():
        for p in d["panels"]:
            for t in p["targets"]:
                if t["datasource"]["type"] == TYPES[kind]:
                    yield name, p["title"], t


def test_four_dashboards_importable_anywhere_on_provisioned_data_source_types() -> None:
    """Every panel, query and variable reads its data source from a data-source variable, which an
    import outside compose fills from ``__inputs``; compose's provisioned sources have those types."""
    assert [p.stem for p in DASHBOARDS] == ["alerts", "device", "fleet", "pipeline"]
    provisioned = {d["type"] for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    uids: set[str] = set()
    for name, d in _dashboards():
        assert d["uid"] and d["title"] and d["panels"], name
        assert d["uid"] not in uids
        uids.add(d["uid"])
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), name
        inputs = {i["name"]: i for i in d["__inputs"]}
        ds_vars = {v["name"]: v for v in d["templating"]["list"] if v["type"] == "datasource"}
        for v in ds_vars.values():
            [(input_name, i)] = [(n, i) for n, i in inputs.items() if v["current"]["value"] == f"${{{n}}}"]
            assert i["type"] == "datasource" and i["pluginId"] == v["query"], (name, input_name)
            assert v["query"] in provisioned, (name, v["name"])
        assert len(ds_vars) == len(inputs), name
        refs = [
            *(p["datasource"] for p in d["panels"]),
            *(t["datasource"] for p in d["panels"] for t in p["targets"]),
            *(v["datasource"] for v in d["templating"]["list"] if "datasource" in v),
        ]
        for ds in refs:
            var = re.fullmatch(r"\$\{(\w+)\}", ds["uid"])
            assert var and var[1] in ds_vars, (name, ds)
            assert ds["type"] == ds_vars[var[1]]["query"], (name, ds)
        assert all(p["targets"] for p in d["panels"]), name
        assert "${DS_" not in json.dumps(d["panels"]), "panels name the variable, never the import input"


def _influxql(q: str, device: str, fields: list[str]) -> str:
    """Grafana's InfluxQL macros and variables, replaced as Grafana would before sending the query."""
    q = q.replace("$timeFilter", "time > now() - 3650d")
    q = q.replace("$__interval", "1m")
    q = q.replace("${field:regex}", "(" + "|".join(re.escape(f) for f in fields) + ")")
    q = q.replace("${device}", device)
    assert not re.search(r"\$[\w{]", q), q  # every variable replaced ($ left: a regex anchor)
    return q


def _rows(result: dict[str, Any]) -> list[list[Any]]:
    [r] = result["results"]
    assert "error" not in r, r["error"]
    return [row for series in r.get("series", []) for row in series["values"]]


@pytest.mark.mosquitto
@pytest.mark.postgres
@pytest.mark.influxd
def test_every_influxql_query_returns_data_a_simulator_run_wrote_to_influxd_1(
    tmp_path: Path, mosquitto_server: Mosquitto, influxd_server: Influxd, postgres_url: str
) -> None:
    """The device dashboard's InfluxQL (panels and the field variable), run on a real influxd 1.x
    after what a daemon stored from a simulated fleet of every profile: each query returns rows."""
    db = "dash_" + uuid.uuid4().hex[:10]
    pipe = Pipeline("dash", tmp_path, mosquitto_server.url, influxd_server.create_database(db), postgres_url)
    daemon = pipe.daemon().start()
    try:
        config = pipe.fleet(devices=len(PROFILES), rate=0, count=40, seed=5)
        manifest = pipe.publish(config)
        pipe.wait_stored(expected_readings(manifest), expected_letters(config, manifest), 60, daemon)
    finally:
        assert daemon.terminate() == 0
    device = next(
        d
        for [_, d] in _rows(influxd_server.query('SHOW TAG VALUES FROM "event_logs" WITH KEY = "device_id"', db))
        if _rows(influxd_server.query(f'SELECT count(*) FROM "device_metrics" WHERE "device_id" = \'{d}\'', db))
        and _rows(influxd_server.query(f'SELECT count(*) FROM "sensor_readings" WHERE "device_id" = \'{d}\'', db))
    )
    device_dash = json.loads((ROOT / "deploy/grafana/dashboards/device.json").read_text())
    field_var = next(v for v in device_dash["templating"]["list"] if v["name"] == "field")
    fields = [f for f, _ in _rows(influxd_server.query(field_var["query"], db))]
    assert {"temperature", "humidity"} <= set(fields), fields
    queries = list(_targets("influx"))
    assert len(queries) >= 6
    for name, title, t in queries:
        rows = _rows(influxd_server.query(_influxql(t["query"], device, fields), db))
        assert rows and any(v is not None for row in rows for v in row[1:]), (name, title, t["query"])


def test_promql_names_metrics_and_labels_the_daemon_exports(written: Written) -> None:
    declared = set(METRICS)
    n = 0
    for name, title, t in _targets("prometheus"):
        expr = t["expr"]
        names = set(re.findall(r"\b(iot_[a-z_]+)\b", expr))
        assert names and names <= declared, (name, title, names - declared)
        labels = set(re.findall(r"by \(([^)]*)\)", expr)) | set(re.findall(r"\{\{(\w+)\}\}", t.get("legendFormat", "")))
        for metric in names & set(written.metrics):  # seen in the run: its labels are known
            assert labels <= written.metrics[metric], (name, title, metric, labels)
        n += 1
    assert n >= 10
    seen = {m for _, _, t in _targets("prometheus") for m in re.findall(r"\b(iot_[a-z_]+)\b", t["expr"])}
    assert len(seen & set(written.metrics)) >= 10, "most panels show metrics this run really exported"


def _grafana_sql(q: str) -> str:
    """Grafana's macros and variables, replaced as Grafana would before sending the query."""
    q = re.sub(r"\$__timeFilter\(([\w.]+)\)", r"(\1 > now() - interval '1 day')", q)
    q = re.sub(r"\$__timeGroupAlias\(([\w.]+), *1h\)", r"date_trunc('hour', \1) AS time", q)
    q = q.replace("${device}", SAMPLE_DEVICE).replace("$device", SAMPLE_DEVICE)
    assert "$" not in q, q
    return q


@pytest.mark.postgres
def test_every_sql_panel_runs_on_the_migrated_schema(postgres_url: str) -> None:
    from registry.db import make_engine, migrate

    migrate(postgres_url)
    engine = make_engine(postgres_url)
    queries = [(name, title, t["rawSql"]) for name, title, t in _targets("sql")]
    variables = [
        (name, v["name"], v["query"])
        for name, d in _dashboards()
        for v in d["templating"]["list"]
        if v.get("datasource", {}).get("uid") == "postgres"
    ]
    try:
        with engine.connect() as conn:
            for name, title, q in [*queries, *variables]:
                try:
                    conn.execute(text(_grafana_sql(q))).all()
                except Exception as e:  # a wrong table or column
                    pytest.fail(f"{name} / {title}: {str(e).splitlines()[0]}")
    finally:
        engine.dispose()
    assert len(queries) >= 12


def test_compose_serves_prometheus_and_grafana_with_these_files() -> None:
    compose = yaml.safe_load(COMPOSE.read_text())
    services = compose["services"]
    for svc in ("prometheus", "grafana"):
        for vol in services[svc]["volumes"]:
            src = vol.split(":")[0]
            if src.startswith("./"):
                assert (ROOT / src).exists(), src
    assert {"prometheus-data", "grafana-data"} <= set(compose["volumes"])
    scrape = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
    target = scrape["scrape_configs"][0]["static_configs"][0]["targets"][0]
    port = services["ingest"]["command"][services["ingest"]["command"].index("--metrics-port") + 1]
    assert target == f"ingest:{port}"
    env = services["grafana"]["environment"]
    text_ = DATASOURCES.read_text()
    for var in re.findall(r"\$([A-Z][A-Z_]*)", text_):
        assert var in env, f"datasources.yml reads ${var}, which the grafana service does not set"
    for secret in re.findall(r"\$__file\{/run/secrets/([a-z_]+)\}", text_):
        assert secret in services["grafana"]["secrets"], f"datasources.yml reads secret {secret}, not mounted"
        assert secret in compose["secrets"], secret
    assert "change-me" not in json.dumps(env)

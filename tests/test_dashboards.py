"""The Grafana dashboards and the compose stack that serves them, checked against what the pipeline
really writes: a demo run (embedded broker, daemon, stores) supplies the measurements, fields,
tags and Prometheus metrics; every SQL panel runs against the real migrated PostgreSQL schema.
(Grafana itself cannot run here.)"""

from __future__ import annotations

import json
import re
import sqlite3
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


def _targets(kind: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    uid = {"prometheus": "prometheus", "influx": "influxdb", "sql": "postgres"}[kind]
    for name, d in _dashboards():
        for p in d["panels"]:
            for t in p["targets"]:
                if t["datasource"]["uid"] == uid:
                    yield name, p["title"], t


def test_four_dashboards_on_provisioned_data_sources() -> None:
    assert [p.stem for p in DASHBOARDS] == ["alerts", "device", "fleet", "pipeline"]
    sources = {d["uid"]: d for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    assert set(sources) == {"prometheus", "influxdb", "postgres"}
    uids: set[str] = set()
    for name, d in _dashboards():
        assert d["uid"] and d["title"] and d["panels"], name
        assert d["uid"] not in uids
        uids.add(d["uid"])
        ids = [p["id"] for p in d["panels"]]
        assert len(ids) == len(set(ids)), name
        for p in d["panels"]:
            for ds in [p["datasource"], *(t["datasource"] for t in p["targets"])]:
                assert ds["uid"] in sources, (name, p["title"])
                assert ds["type"] == sources[ds["uid"]]["type"], (name, p["title"])
            assert p["targets"], (name, p["title"])
        for v in d["templating"]["list"]:
            if "datasource" in v:
                assert v["datasource"]["uid"] in sources


def test_flux_queries_name_measurements_fields_and_tags_the_pipeline_writes(written: Written) -> None:
    measurements = {m for m, _ in written.fields}
    bucket = yaml.safe_load(COMPOSE.read_text())["services"]["influxdb"]["environment"]["DOCKER_INFLUXDB_INIT_BUCKET"]
    device = json.loads((ROOT / "deploy/grafana/dashboards/device.json").read_text())
    field_var = next(v for v in device["templating"]["list"] if v["name"] == "field")
    chosen = set(field_var["query"].split(","))
    assert chosen <= {f for m, f in written.fields if m == "sensor_readings"}, chosen - {f for _, f in written.fields}
    n = 0
    for name, title, t in _targets("influx"):
        q = t["query"]
        assert re.findall(r'from\(bucket: "([^"]+)"\)', q) == [bucket], (name, title)
        ms = re.findall(r'r\._measurement == "([^"]+)"', q)
        assert ms and set(ms) <= measurements, (name, title, ms)
        for f in re.findall(r'r\._field == "([^"]+)"', q):
            assert (ms[0], f) in written.fields, (name, title, f)
        used_tags = set(re.findall(r"\br\.(\w+)\b", q)) - {"_measurement", "_field", "_value", "_time"}
        for keys in re.findall(r"rowKey: \[([^\]]*)\]", q):
            used_tags |= {k.strip().strip('"') for k in keys.split(",")} - {"_time"}
        assert used_tags <= written.tags, (name, title, used_tags - written.tags)
        n += 1
    assert n >= 6


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

"""`iot alerts list` over 1,000,000 alert rows on PostgreSQL: p50/max per filter combination.

    python bench/alerts_list_bench.py [--url postgresql+psycopg://...] [--rows 1000000] [--runs 20]

Without --url a throwaway PostgreSQL is started in a temp dir (tests.servers.Postgres). The
rows are generated server-side (INSERT ... SELECT generate_series): 20 rules, 10,000 devices on
50 sites, one year of history, the newest 200,000 rows holding ~10% open/acknowledged alerts
(the realistic shape: open alerts are recent). Each query is the CLI's own
``registry.alerts.store.list_alerts``. Exit status 1 when a p50 is over the budget.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from registry.alerts.store import list_alerts, list_query
from registry.auth import BOOTSTRAP_ACTOR, Actor
from registry.db import make_engine, migrate

BUDGET_MS = 200.0

FILL = """
INSERT INTO alert_rules (name, kind, field, op, threshold, hold_s, hysteresis, clear_after_s,
                         absolute, severity, scope, enabled, created_at)
SELECT 'rule-' || g, 'threshold', 'temperature', '>', 80, 0, 0, 0, true, 'major', 'all', true,
       now()
FROM generate_series(1, 20) g;

INSERT INTO alerts (rule_id, device_id, site, severity, status, message, count, last_value,
                    opened_at, last_seen_at, acknowledged_at, acknowledged_by, resolved_at,
                    resolved_by)
SELECT (SELECT min(id) FROM alert_rules) + (i % 20),
       'dev-' || lpad(((i / 20) % 10000)::text, 5, '0'),
       'site-' || lpad((((i / 20) % 10000) % 50)::text, 2, '0'),
       (ARRAY['critical', 'major', 'minor', 'warning', 'info'])[1 + floor(random() * 5)::int],
       st, 'rule breached', 1 + floor(random() * 20)::int, random() * 100,
       o, o + interval '5 minutes',
       CASE WHEN st <> 'open' THEN o + random() * interval '30 minutes' END,
       CASE WHEN st <> 'open' THEN 'ops' END,
       CASE WHEN st = 'resolved' THEN o + interval '30 minutes' + random() * interval '3 hours'
       END,
       CASE WHEN st = 'resolved' THEN 'system' END
FROM (
    SELECT i, now() - i * interval '31.5 seconds' AS o,
           CASE WHEN i > 200000 THEN 'resolved'
                WHEN random() < 0.05 THEN 'open'
                WHEN random() < 0.1 THEN 'acknowledged'
                ELSE 'resolved' END AS st
    FROM generate_series(1, :rows) i
) x;
"""


def fill(engine: Engine, rows: int) -> None:
    with engine.begin() as conn:
        for stmt in FILL.split(";\n"):
            if stmt.strip():
                conn.execute(text(stmt), {"rows": rows} if ":rows" in stmt else {})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE alerts"))


def cases() -> list[tuple[str, Actor, dict[str, Any]]]:
    now = datetime.now(UTC)
    paris = Actor("site-op", "operator", ("site-03", "site-04"))
    a = BOOTSTRAP_ACTOR
    return [
        ("newest 50 (no filter)", a, {}),
        ("status=open", a, {"status": "open"}),
        ("status=open severity=critical", a, {"status": "open", "severity": "critical"}),
        ("status=resolved severity=info", a, {"status": "resolved", "severity": "info"}),
        (
            "status=acknowledged severity=warning site",
            a,
            {"status": "acknowledged", "severity": "warning", "site": "site-11"},
        ),
        ("device", a, {"device": "dev-01234"}),
        ("device status=resolved", a, {"device": "dev-01234", "status": "resolved"}),
        ("device with no alerts", a, {"device": "dev-99999"}),
        ("status=open severity=critical site (rare)", a, {"status": "open", "severity": "critical", "site": "site-11"}),
        ("site since=24h", a, {"site": "site-07", "since": now - timedelta(hours=24)}),
        ("site since=30d limit=500", a, {"site": "site-07", "since": now - timedelta(days=30), "limit": 500}),
        ("severity=critical since=7d", a, {"severity": "critical", "since": now - timedelta(days=7)}),
        ("since=400d status=open (old window)", a, {"status": "open", "since": now - timedelta(days=400)}),
        ("site-limited operator (2 sites)", paris, {}),
        ("site-limited operator status=open", paris, {"status": "open"}),
    ]


def plan(engine: Engine, actor: Actor, filters: dict[str, Any]) -> str:
    q = list_query(actor, **filters)
    compiled = q.compile(engine, compile_kwargs={"literal_binds": True})
    with engine.connect() as conn:
        lines = [r[0] for r in conn.execute(text(f"EXPLAIN {compiled}"))]
    return " | ".join(line.strip() for line in lines[:4])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", help="PostgreSQL URL (default: a throwaway server)")
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--explain", action="store_true", help="print each query plan's top lines")
    args = ap.parse_args()

    server = None
    url = args.url
    if url is None:
        from tests.servers import Postgres

        server = Postgres(Path(tempfile.mkdtemp(prefix="alerts-bench-"))).start()
        url = server.create_database("alerts_bench")
    try:
        migrate(url)
        engine = make_engine(url)
        t0 = time.perf_counter()
        fill(engine, args.rows)
        with engine.connect() as conn:
            n = conn.execute(text("SELECT count(*) FROM alerts")).scalar_one()
        print(f"{n:,} alert rows generated and analysed in {time.perf_counter() - t0:.1f}s\n")
        worst = 0.0
        print(f"{'query':<44} {'rows':>5} {'p50 ms':>8} {'max ms':>8}")
        for name, actor, filters in cases():
            times, found = [], 0
            for _ in range(args.runs):
                with Session(engine) as s:
                    t = time.perf_counter()
                    found = len(list_alerts(s, actor, **filters))
                    times.append((time.perf_counter() - t) * 1000)
            p50 = statistics.median(times)
            worst = max(worst, p50)
            print(f"{name:<44} {found:>5} {p50:>8.1f} {max(times):>8.1f}")
            if args.explain:
                print("    " + plan(engine, actor, filters))
        verdict = "within" if worst <= BUDGET_MS else "OVER"
        print(f"\nworst p50 {worst:.1f} ms: {verdict} the {BUDGET_MS:.0f} ms budget")
        engine.dispose()
        return 0 if worst <= BUDGET_MS else 1
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    sys.exit(main())

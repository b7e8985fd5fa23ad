"""How long ``iot`` commands take to start, as ratios against the floor each pays in the same run.

    python bench/cli_startup_bench.py [--runs 7]

Each command runs as a whole process, paired with its floor (A B A B …, after one warm-up) so
a drift in the machine's speed hits both; the figure is the median of the pairwise ratios
command/floor. Floors: ``python -c "import typer"`` for ``--version`` and help; ``import typer,
sqlalchemy`` for the registry commands (on a throwaway embedded registry holding one key, one
device, one alert rule); the same plus the embedded time-series store's ``sqlite3`` for
``telemetry query``. Budgets (issue "first day"): ``--version`` 1.5x, ``alerts list`` 1.6x, every
other read command 2x. Exit status 1 when a median ratio is over its budget.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PY = sys.executable
IOT = [PY, "-c", "from iot.cli import main; main()"]
TYPER = [PY, "-c", "import typer"]
TYPER_SQLA = [PY, "-c", "import typer, sqlalchemy"]
TYPER_SQLA_SQLITE = [PY, "-c", "import typer, sqlalchemy, sqlite3"]


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]
    floor: list[str]
    budget: float


CASES = [
    Case("iot --version", ["--version"], TYPER, 1.5),
    Case("iot alerts list", ["alerts", "list"], TYPER_SQLA, 1.6),
    Case("iot alerts rules list", ["alerts", "rules", "list"], TYPER_SQLA, 2.0),
    Case("iot alerts channels list", ["alerts", "channels", "list"], TYPER_SQLA, 2.0),
    Case("iot devices list", ["devices", "list"], TYPER_SQLA, 2.0),
    Case("iot devices show d1", ["devices", "show", "d1"], TYPER_SQLA_SQLITE, 2.0),
    Case("iot registry keys list", ["registry", "keys", "list"], TYPER_SQLA, 2.0),
    Case("iot registry audit", ["registry", "audit"], TYPER_SQLA, 2.0),
    Case("iot deadletters list", ["deadletters", "list"], TYPER_SQLA, 2.0),
    Case("iot telemetry query --device d1", ["telemetry", "query", "--device", "d1"], TYPER_SQLA_SQLITE, 2.0),
]


def wall(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - t


def setup(env: dict[str, str]) -> None:
    """An embedded registry with an admin key (in ``env``), a device and a rule."""
    add = subprocess.run([*IOT, "registry", "keys", "add", "--name", "bench", "--role", "admin"],
                         env=env, capture_output=True, text=True, check=True)  # fmt: skip
    env["IOT_API_KEY"] = add.stdout.strip()
    for argv in (
        ["devices", "add", "d1", "--type", "thermostat", "--site", "s1"],
        [
            "alerts",
            "rules",
            "add",
            "hot",
            "--kind",
            "threshold",
            "--severity",
            "major",
            "--field",
            "temperature",
            "--op",
            ">",
            "--value",
            "80",
        ],
    ):
        subprocess.run([*IOT, *argv], env=env, capture_output=True, check=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    over = 0
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("IOT_")}
        env.update(IOT_DATA_DIR=str(Path(tmp) / "data"), COLUMNS="200")
        env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
        setup(env)
        print(f"{'command':36} {'median s':>9} {'floor s':>8} {'ratio':>6} {'budget':>6}")
        for case in CASES:
            cmd = [*IOT, *case.argv]
            wall(cmd, env), wall(case.floor, env)  # warm-up
            pairs = [(wall(cmd, env), wall(case.floor, env)) for _ in range(args.runs)]
            ratio = statistics.median(a / b for a, b in pairs)
            a, b = statistics.median(p[0] for p in pairs), statistics.median(p[1] for p in pairs)
            verdict = "" if ratio <= case.budget else "  OVER"
            over += ratio > case.budget
            print(f"{case.name:36} {a:9.3f} {b:8.3f} {ratio:6.2f} {case.budget:6.1f}{verdict}")
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())

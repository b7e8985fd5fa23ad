"""What `iot demo` shows: a live progress line while it runs, then the summary, a chart and next steps."""

from __future__ import annotations

import sys
from typing import Any

import typer

from iot.cli.toolkit import print_table
from iot.demo import DemoProgress, DemoResult
from iot.present.chart import ChartSpec, Mark, Series, line_chart


def progress_text(p: DemoProgress) -> str:
    """One line: messages in (and per second), written per store, dead letters, alerts."""
    stored = "  ".join(f"{d} {n}" for d, n in p.written.items())
    goal = f"/{p.expected}" if p.expected is not None else ""
    return (
        f"{p.phase:8} {p.elapsed:5.1f}s  in {p.received}{goal} ({p.rate:,.0f}/s)  stored: {stored}  "
        f"dead letters {p.dead_lettered}  alerts opened {p.alerts_opened}"
    )


class LiveProgress:
    """A self-updating status line on stderr when it is a terminal; silent otherwise."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self.console = Console(stderr=True, highlight=False)
        self.enabled = self.console.is_terminal
        self.live = Live("", console=self.console, refresh_per_second=4, transient=False) if self.enabled else None
        self.last: DemoProgress | None = None

    def __enter__(self) -> LiveProgress:
        if self.live is not None:
            self.live.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        if self.live is not None:
            self.live.stop()

    def __call__(self, p: DemoProgress) -> None:
        self.last = p
        if self.live is not None:
            self.live.update(progress_text(p))


def print_result(r: DemoResult) -> None:
    """Summary tables, the chart of one device's temperature with its alerts, next commands."""
    if r.fleet:
        print_table(["device type @ site", "devices"], list(r.fleet.items()), title="provisioned fleet")
    rows = [
        (
            k,
            "readings" if k in ("telemetry", "metrics", "events") else "documents",
            r.sent[k],
            r.stored[k],
            "ok" if r.sent[k] == r.stored[k] else "MISMATCH",
        )
        for k in r.sent
    ]
    print_table(["kind", "counted as", "sent", "stored", ""], rows, title="sent vs stored")
    print_table(
        ["", "count"],
        [
            ("messages acknowledged by the broker", r.expected_messages),
            ("messages handled by the daemon", r.handled_messages),
            ("malformed messages sent", r.malformed_sent),
            ("dead-lettered", r.dead_lettered),
            ("duplicate copies sent (stored once)", r.duplicates_sent),
            *[(f"alerts {status}", n) for status, n in sorted(r.alerts.items())],
        ],
    )
    h = r.highlight
    if h is not None:
        marks = [Mark(a.opened_ns, f"alert #{a.id} {a.rule} ({a.severity}, {a.status}): {a.message}") for a in h.alerts]
        title = f"{h.field} of {h.device_id} ({h.device_type} @ {h.site or '-'})"
        width = min(100, max(60, typer.get_terminal_size()[0] - 2)) if sys.stdout.isatty() else 80
        typer.echo(line_chart([Series(h.field, h.points)], ChartSpec(title, width, 14, marks, sys.stdout.isatty())))
        if not h.alerts:
            typer.echo(f"  no alert fired on {h.device_id} in this run (try a longer --duration)")
    d = r.data_dir
    typer.echo("next, on the data this run kept:")
    for cmd in next_commands(r):
        typer.echo(f"  IOT_DATA_DIR={d} {cmd}")


def next_commands(r: DemoResult) -> list[str]:
    device = r.highlight.device_id if r.highlight else "sim-0000"
    cmds = [
        "iot devices list",
        f"iot devices show {device}",
        f"iot telemetry plot --device {device} --field temperature --since 1h",
        f"iot telemetry query --device {device} --since 1h --format csv > {device}.csv",
        "iot alerts list",
    ]
    if r.highlight and r.highlight.alerts:
        cmds.append(f"iot alerts show {r.highlight.alerts[0].id}")
    cmds.append("iot deadletters list")
    cmds.append("iot alerts channels add ops --kind webhook --url https://… --min-severity major")
    return cmds

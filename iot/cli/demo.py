"""``iot demo``: embedded broker, stores, daemon and fleet in one process."""

from __future__ import annotations

import typer

from iot.cli.toolkit import ExitCode, fail, settings
from iot.demo import run_demo
from iot.demo_view import LiveProgress, print_result

app = typer.Typer()


@app.command("demo")
def demo(
    duration: float = typer.Option(20.0, min=1, help="seconds the simulated fleet sends"),
    devices: int = typer.Option(10, min=1, max=1000, help="simulated devices"),
    rate: float = typer.Option(5.0, min=0.1, help="messages per second per device"),
    seed: int = typer.Option(1, help="simulator seed"),
) -> None:
    """Embedded broker, stores, daemon and fleet together; prints sent vs stored and exits."""
    s = settings()
    typer.echo(
        f"polyglot-iot demo: {devices} devices x {rate:g} msg/s for {duration:g}s "
        "(embedded broker and stores, 2% malformed, 2% duplicates)",
        err=True,
    )
    with LiveProgress() as live:
        r = run_demo(s, duration=duration, devices=devices, rate=rate, seed=seed, progress=live)
    print_result(r)
    if not r.settled:
        fail(f"the daemon handled {r.handled_messages} of {r.expected_messages} acknowledged messages in time", 1)
    if not r.complete:
        fail("stored counts differ from what was sent", ExitCode.FAILED)

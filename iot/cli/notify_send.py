"""What sends: ``iot alerts channels test`` and ``iot alerts notifier run`` (the notifier, its
outbox and transports), loaded by name when invoked (:mod:`iot.cli.notify`, :mod:`iot.cli.alerts`)."""

from __future__ import annotations

from typing import Annotated

import typer

from iot.cli.acting import acting, ready
from iot.cli.notify import RegistryOpt
from iot.cli.toolkit import fail, settings
from iot.logs import configure_logging
from iot.notifying import build_notifier
from registry.auth import require_site
from registry.db import make_engine
from registry.notify.channels import get_channel
from registry.notify.outbox import Delivery
from registry.notify.render import payload

notifier_app = typer.Typer(no_args_is_help=True, help="The notifier that sends queued notifications.")


test_app = typer.Typer()


@test_app.command("test")
def test(name: Annotated[str, typer.Argument()], registry: RegistryOpt = None) -> None:
    """Send a test notification now and print the outcome; exit 1 if it failed."""
    s = settings(registry_url=registry)
    with acting(settings(registry_url=registry)) as (session, actor):
        ch = get_channel(session, actor, name)
        require_site(actor, "operator", "send test notifications", ch.site)
        key = f"test:{ch.id}"
        body = payload(
            transition="test",
            delivery=key,
            alert={
                "id": 0,
                "status": "open",
                "severity": ch.min_severity,
                "message": f"test notification for channel {name}",
                "count": 1,
                "last_value": None,
                "opened_at": None,
            },
            rule={"id": 0, "name": "channel-test", "kind": "test"},
            device={"id": "-", "type": None, "site": ch.site},
            actor=actor.name,
        )
        d = Delivery(0, key, "test", ch.kind, ch.target, dict(ch.options or {}), ch.secret_name, body, 0)
    engine = make_engine(s.resolved_registry_url())
    try:
        result = build_notifier(s, engine).deliver(d)  # bounded by IOT_NOTIFY_ATTEMPT_TIMEOUT
    finally:
        engine.dispose()
    if result.ok:
        typer.echo(f"sent ({result.status_code}, {result.elapsed_ms} ms)")
    else:
        fail(f"not sent: {result.error}", 1)


@notifier_app.command("run")
def run(registry: RegistryOpt = None) -> None:
    """Run a notifier on its own until SIGTERM/SIGINT (the daemon runs one too unless IOT_NOTIFY=false)."""
    import signal
    import threading

    s = settings(registry_url=registry)
    configure_logging(s.log_format, s.log_level, s.log_repeat_interval)
    engine = make_engine(s.resolved_registry_url())
    ready(s, engine)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    n = build_notifier(s, engine).start()
    stop.wait()
    n.stop()
    engine.dispose()

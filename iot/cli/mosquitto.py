"""``iot registry export-mosquitto``: the broker's password file, ACL and listener options from the
registry (apart from the other registry commands: the topic mappings it reads load every codec)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from core.broker_accounts import suffixes
from ingest.decoding.acl_topics import device_topics
from ingest.decoding.mappings import MappingError, load_mappings
from iot.cli.acting import acting
from iot.cli.toolkit import fail, settings
from registry import devices as dev

app = typer.Typer()

RegistryOpt = Annotated[str | None, typer.Option("--registry", help="Registry URL (env IOT_REGISTRY_URL).")]


@app.command("export-mosquitto")
def export_mosquitto(
    dir: Annotated[Path, typer.Option("--dir", help="Where to write passwd and acl.")],
    ingest_user: Annotated[str, typer.Option("--ingest-user")] = "iot-ingest",
    ingest_password_file: Annotated[
        Path | None,
        typer.Option("--ingest-password-file", help="Else env IOT_BROKER_PASSWORD."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Accounts for `iot ingest run --workers N`: {ingest-user}-k, {ingest-user}-alerts (else IOT_WORKERS).",
        ),
    ] = None,
    replay_user: Annotated[
        str | None, typer.Option("--replay-user", help="Add the account `iot deadletters replay` publishes with.")
    ] = None,
    replay_password_file: Annotated[Path | None, typer.Option("--replay-password-file")] = None,
    device_topic: Annotated[
        list[str] | None,
        typer.Option("--device-topic", help="A topic filter direct devices write, {device} for the id (repeatable)."),
    ] = None,
    owner: Annotated[
        str | None,
        typer.Option(
            "--owner", help="Give the files (0600) to this user, e.g. mosquitto when the broker starts as root."
        ),
    ] = None,
    mappings: Annotated[
        Path | None,
        typer.Option("--mappings", help="Topic mappings (else IOT_MAPPINGS): direct devices may write their topics."),
    ] = None,
    registry: RegistryOpt = None,
) -> None:
    """Write a mosquitto password file, ACL and listener options from the registry (unrestricted admins)."""
    s = settings(registry_url=registry)
    n_workers = s.workers if workers is None else workers
    mapped: list[str] = []
    if mappings is not None or s.mappings is not None:
        try:
            rules = load_mappings(mappings or s.mappings, s.topic_root)  # type: ignore[arg-type]
            mapped = [t for t in device_topics(rules) if t != f"{s.topic_root}/{{device}}/#"]
        except (MappingError, ValueError) as e:
            fail(str(e))
    try:
        file_owner = dev.file_owner(owner) if owner is not None else None
    except ValueError as e:
        fail(str(e))
    if ingest_password_file is not None:
        password = _read_secret(ingest_password_file, "--ingest-password-file")
    else:
        password = s.broker_password.get_secret_value() if s.broker_password else ""
    replay_password = _read_secret(replay_password_file, "--replay-password-file") if replay_password_file else ""
    with acting(s) as (session, actor):
        passwd, acl, n = dev.export_mosquitto(
            session,
            actor,
            dir,
            ingest_user,
            password,
            s.topic_root,
            replay_user,
            replay_password,
            s.max_packet_bytes,
            [*(device_topic or ()), *mapped],
            file_owner,
            n_workers,
        )
    extra = suffixes(n_workers)
    accounts = ingest_user + (f" + {len(extra)} worker/evaluator accounts" if extra else "")
    accounts += f" + {replay_user}" if replay_user else ""
    typer.echo(
        f"wrote {passwd}, {acl} and {passwd.parent / 'listener.conf'}: {n} devices + {accounts}"
        + (f" (owner {owner})" if owner else "")
    )


def _read_secret(path: Path, option: str) -> str:
    try:
        return path.read_text().strip()
    except OSError as e:
        fail(f"cannot read {option}: {e.strerror}: {path}")

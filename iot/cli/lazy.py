"""Sub-commands loaded when invoked: a command group whose members are named in a static table.

``iot --version`` and ``iot alerts list`` should not pay for the store clients, the daemon or the
simulator. Each entry names the module (under ``iot.cli``) and the Typer app or command in it; the
module is imported the first time its name is invoked. ``--help`` lists the names and their help
from the table without importing anything. The table is the one place the ``iot`` tree is wired:
every arrow it draws points into ``iot.cli`` itself.
"""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import typer
from typer import _click as click  # the click typer vendors (and hands its groups)
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class Lazy:
    """``iot.cli.<module>``'s ``attr`` (a ``typer.Typer``), shown in help as ``help``; a group of
    commands (even of one: ``iot ingest run``), or with ``group=False`` its one command (``iot demo``)."""

    module: str
    attr: str
    help: str
    group: bool = True

    def load(self, name: str) -> click.Command:
        module = f"iot.cli.{self.module}"
        if module in sys.modules:
            target = getattr(sys.modules[module], self.attr)
        else:
            with _modules_kept():
                target = getattr(importlib.import_module(module), self.attr)
        if not isinstance(target, typer.Typer):
            raise TypeError(f"iot.cli.{self.module}.{self.attr} is not a Typer app")
        cmd = typer.main.get_group(target) if self.group else typer.main.get_command(target)
        cmd.name = name
        if not cmd.help:
            cmd.help = self.help
        return cmd


@contextmanager
def _modules_kept() -> Iterator[None]:
    """Import without the cyclic garbage collector, then move what the imports made (modules,
    classes, functions: kept for the life of the process) out of its reach (``gc.freeze``): its
    passes over them found nothing to free and cost a read command ~40 ms. It runs as before for
    what the command itself allocates."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if enabled:
            gc.enable()


class LazyGroup(TyperGroup):
    """A Typer group that also holds the commands of :attr:`TABLE`, each loaded on first use."""

    TABLE: Mapping[str, Lazy] = {}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._listing = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *(n for n in self.TABLE if n not in self.commands)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        lazy = self.TABLE.get(cmd_name)
        if cmd is not None or lazy is None:
            return cmd
        if self._listing:  # a help page: the name and one line, nothing imported
            return TyperCommand(name=cmd_name, help=lazy.help, short_help=lazy.help)
        cmd = lazy.load(cmd_name)
        self.add_command(cmd, cmd_name)
        return cmd

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


def lazy_group(table: Mapping[str, Lazy]) -> type[LazyGroup]:
    """A :class:`LazyGroup` class for ``typer.Typer(cls=...)`` holding ``table``."""
    return type("LazyGroup", (LazyGroup,), {"TABLE": dict(table)})

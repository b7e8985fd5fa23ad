"""Exit codes and the one-line CLI error: what ``iot``'s entry point needs before any command loads."""

from __future__ import annotations

from enum import IntEnum
from typing import NoReturn


class ExitCode(IntEnum):
    """Every ``iot`` command's exit codes (README, "Command line")."""

    OK = 0
    FAILED = 1  # not found, unreachable, or the command's own check failed (status degraded, demo mismatch)
    USAGE = 2  # a usage mistake, invalid input or settings
    DENIED = 3  # permission denied for the acting API key
    STATE = 4  # not allowed in the object's current state (e.g. acknowledging a resolved alert)
    INTERRUPTED = 130  # Ctrl-C


class CliError(Exception):
    """A user mistake or an unusable environment: printed as one line, exit ``code``."""

    def __init__(self, message: str, code: int = ExitCode.USAGE) -> None:
        super().__init__(message)
        self.code = code


def fail(message: str, code: int = ExitCode.USAGE) -> NoReturn:
    raise CliError(message, code)

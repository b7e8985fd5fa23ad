"""Errors of the daemon's listening ports, apart from the HTTP server so the CLI's error mapping can
name them without loading the server and its metrics."""

from __future__ import annotations


class PortInUse(OSError):
    """The metrics port is taken (another daemon, or another program): the message names it."""

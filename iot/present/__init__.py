"""Presentation for the command line: terminal and PNG charts, sparklines."""

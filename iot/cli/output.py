"""One output option for every list and query command: ``--format table|json|ndjson|csv``.

``--json`` stays as the short form of ``--format json``. Records are dicts; ``json`` prints one
array (as before), ``ndjson`` one object per line, ``csv`` a header row then one line per record
(nested values as JSON, times as ISO-8601 UTC with ``Z``, ``None`` empty; a text cell starting
with ``=``, ``+``, ``-``, ``@``, tab or CR gets a leading ``'`` so a spreadsheet shows it instead of
evaluating it, see ``core.devicetext.csv_cell``; numbers stay as they are; a cell holding CR or LF
is quoted). ``ndjson`` and ``csv``
write as records arrive, so an iterator streams. Tables stay with each command
(:func:`iot.cli.toolkit.print_table`, the one table renderer).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Annotated, Any, TextIO

import typer

from core.devicetext import csv_cell
from iot.cli.toolkit import emit_json, fail, iso

FORMATS = ("table", "json", "ndjson", "csv")

FormatOpt = Annotated[str | None, typer.Option("--format", help="table | json | ndjson | csv")]


def resolve(fmt: str | None, as_json: bool = False) -> str:
    """The format asked for: ``--format`` wins, ``--json`` means json, else table."""
    if fmt is None:
        return "json" if as_json else "table"
    fmt = fmt.strip().lower()
    if fmt not in FORMATS:
        fail(f"invalid --format {fmt!r}: use one of {', '.join(FORMATS)}")
    if as_json and fmt != "json":
        fail(f"--json and --format {fmt} disagree: give one")
    return fmt


def iso_utc(t: datetime) -> str:
    """As ``--json`` prints times: ISO-8601 UTC to the second, ``Z`` (naive means UTC)."""
    return iso(t)


def _default(o: Any) -> Any:
    if isinstance(o, datetime):
        return iso_utc(o)
    if isinstance(o, bytes):
        return o.decode("utf-8", "backslashreplace")
    return str(o)


def cell(v: Any) -> str:
    """One CSV cell; text is made inert for spreadsheets (numbers, bools and times cannot start a formula)."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, datetime):
        return iso_utc(v)
    if isinstance(v, dict | list | tuple):
        return json.dumps(v, default=_default, separators=(",", ":"))
    if isinstance(v, bytes):
        return csv_cell(v.decode("utf-8", "backslashreplace"))
    if isinstance(v, int | float):
        return str(v)  # -3.5 is a number, not a formula
    return csv_cell(str(v))


def columns_of(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every key, in order of first appearance."""
    seen: dict[str, None] = {}
    for r in records:
        seen.update(dict.fromkeys(r))
    return list(seen)


def write_ndjson(records: Iterable[Mapping[str, Any]], out: TextIO) -> int:
    n = 0
    for r in records:
        out.write(json.dumps(r, default=_default, separators=(",", ":")) + "\n")
        n += 1
    return n


def write_csv(records: Iterable[Mapping[str, Any]], out: TextIO, columns: Sequence[str] | None = None) -> int:
    """Header from ``columns`` (or the first record's keys when streaming), then one row each."""
    it: Iterator[Mapping[str, Any]] = iter(records)
    w = _LfRows(out)
    if columns is None:
        first = next(it, None)
        if first is None:
            return 0
        columns = list(first)
        it = _chain(first, it)
    w.writerow([csv_cell(str(c)) for c in columns])
    n = 0
    for r in it:
        w.writerow([cell(r.get(c)) for c in columns])
        n += 1
    return n


class _LfRows:
    """Rows ending in LF, and every cell holding CR or LF quoted: ``csv.writer`` quotes only for the
    characters of its line terminator, so with ``"\n"`` a device's lone CR would be left bare and
    start a new row (whose first cell no formula check saw). Each row is written CRLF-terminated
    into a buffer and leaves with LF."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.buf = io.StringIO()
        self.writer = csv.writer(self.buf, lineterminator="\r\n")

    def writerow(self, row: Sequence[str]) -> None:
        self.buf.seek(0)
        self.buf.truncate()
        self.writer.writerow(row)
        self.out.write(self.buf.getvalue()[:-2] + "\n")


def _chain(first: Mapping[str, Any], rest: Iterator[Mapping[str, Any]]) -> Iterator[Mapping[str, Any]]:
    yield first
    yield from rest


def emit(
    records: Iterable[Mapping[str, Any]], fmt: str, columns: Sequence[str] | None = None, out: TextIO | None = None
) -> None:
    """Write ``records`` as ``fmt`` (json, ndjson or csv) to stdout."""
    out = out or sys.stdout
    if fmt == "json":
        out.write(json.dumps(list(records), default=_default, indent=2) + "\n")
    elif fmt == "ndjson":
        write_ndjson(records, out)
    elif fmt == "csv":
        if columns is None and isinstance(records, Sequence):
            columns = columns_of(records)
        write_csv(records, out, columns)
    else:
        raise ValueError(f"not a machine format: {fmt}")
    out.flush()


def machine(fmt: str | None, as_json: bool, records: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> bool:
    """For commands: print ``records`` unless the format is ``table``; True when printed. ``columns``
    are the records' keys in order: a list command names them so its CSV has a header with no rows."""
    chosen = resolve(fmt, as_json)
    if chosen == "table":
        return False
    if chosen == "json":  # exactly what --json always printed
        emit_json(list(records))
    else:
        emit(records, chosen, columns)
    return True

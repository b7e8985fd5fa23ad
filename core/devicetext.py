"""Text that came from a device, made inert for each place it goes. Pure.

Devices are untrusted: an event message, a string field or a SenML ``vs`` is data wherever it is
shown or sent, never markup, a command or a line break. One rule per destination:

- **decode** (``ingest.decoding.names``): a string holding a character of :data:`UNSAFE` -- a C0 control
  but tab, DEL, a C1 control (U+0080-U+009F), the line/paragraph separators U+2028/U+2029, or a
  bidi control (U+061C, U+200E/U+200F, U+202A-U+202E, U+2066-U+2069) -- is refused, so it is
  never stored. What was stored before this rule is still neutralised on the way out:
- **terminal**: :func:`for_terminal` writes every non-printable character as its Python escape
  (``\\x1b``, ``\\x9b``, ``\\r``, ``\\u202e``), so no escape sequence, overwrite or reordering.
- **Slack**: :func:`for_slack` turns ``&``, ``<``, ``>`` into ``&amp;``, ``&lt;``, ``&gt;`` (Slack's
  "Escaping text"), so ``<!channel>`` and ``<http://evil|label>`` are shown, not acted on.
- **one line** (an e-mail header, a summary): :func:`one_line` turns every control, separator
  and bidi control into a space, so no header can be split or refused by the mail library.
- **CSV**: :func:`csv_cell` puts ``'`` before a text cell starting with ``=``, ``+``, ``-``,
  ``@``, tab or CR (OWASP, "CSV Injection"), so a spreadsheet shows it instead of evaluating it.
"""

from __future__ import annotations

import re

_BIDI = r"\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
UNSAFE = re.compile(rf"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]")
"""Characters a device string may not hold (tab is allowed)."""
_LINE_BREAKING = re.compile(rf"[\x00-\x1f\x7f-\x9f\u2028\u2029{_BIDI}]+")
_SLACK = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
CSV_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")


def unsafe(text: str) -> bool:
    """True when ``text`` holds a character of :data:`UNSAFE`."""
    return UNSAFE.search(text) is not None


def for_terminal(text: str, keep: str = "") -> str:
    """``text`` with every non-printable character but those in ``keep`` written as its escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep else repr(c)[1:-1] for c in text)


def for_slack(text: str) -> str:
    """``text`` for a Slack message: ``&``, ``<``, ``>`` as HTML entities (nothing else)."""
    return text.translate(_SLACK)


def one_line(text: str) -> str:
    """``text`` on one line: each run of controls, separators and bidi controls becomes one space."""
    return _LINE_BREAKING.sub(" ", text)


def csv_cell(text: str) -> str:
    """A text cell a spreadsheet will not evaluate: ``'`` before a leading ``= + - @``, tab or CR."""
    return "'" + text if text.startswith(CSV_TRIGGERS) else text

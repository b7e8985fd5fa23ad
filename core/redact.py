"""Secrets out of URLs before a URL is printed or logged: the one place that does it."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<info>\S*)@")
_SECRET_PARAM = re.compile(r"(?P<key>(?:password|passwd|pwd|token|secret|api_?key)=)[^&#\s'\"]*", re.IGNORECASE)


def redact_url(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` replaced by ``***`` (the
    user kept) and secret-looking query parameters blanked; safe on malformed URLs and on messages
    that merely contain one."""

    def userinfo(m: re.Match[str]) -> str:
        user, sep, _ = m["info"].partition(":")
        return f"{m['scheme']}{user}{':***' if sep else ''}@"

    return _SECRET_PARAM.sub(r"\g<key>***", _USERINFO.sub(userinfo, text))

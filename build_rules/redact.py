"""Keep credentials written into a URL (`http://user:secret@host`) out of everything kiln prints."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)?[^/?#]*@")


def redact_url(url: str) -> str:
    """`url` with any `user:password@` before the host replaced by `***@`."""
    return _USERINFO.sub(lambda m: f"{m['scheme'] or ''}***@", url)

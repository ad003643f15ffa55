"""Keep credentials written into a URL (`http://user:secret@host`) out of everything kiln prints."""

from __future__ import annotations

import re

_IN_URL = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)[^/?#\s]*@")
_LEADING = re.compile(r"^[^/?#\s:]*:?[^/?#\s]*@")


def redact_url(text: str) -> str:
    """`text` with the `user:password@` of every URL in it (or of a leading `user:pw@host/...`) as `***@`."""
    return _LEADING.sub("***@", _IN_URL.sub(lambda m: f"{m['scheme']}***@", text))

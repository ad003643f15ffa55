"""Remote options from the command line, the workspace's `.kilnrc` and `~/.netrc`.

`.kilnrc` sits beside MODULE.kiln and holds Bazel-style lines; `build` lines apply to `kiln build`
and `kiln run`, `run` lines to `kiln run` only:

    # the team's cache
    build --remote_cache=http://cache.internal:8080/kiln
    build --remote_header=Authorization=Bearer abc123

Flags given on the command line win; `--remote_header` accumulates.
"""

from __future__ import annotations

import base64
import dataclasses
import netrc
import os
import shlex
from pathlib import Path
from urllib.parse import urlsplit

from kiln.build_rules.errors import UserError
from kiln.build_rules.remote.base import RemoteOptions
from kiln.build_rules.redact import redact_url

_CACHE_SCHEMES = ("http", "https", "grpc", "grpcs")
_EXECUTOR_SCHEMES = ("grpc", "grpcs")


def resolve(workspace_root: Path, command: str, flags: dict[str, object]) -> RemoteOptions:
    """The remote options of one `kiln <command>`; `flags` maps flag names to their command-line values."""
    values = read_kilnrc(workspace_root / ".kilnrc", command)
    for name, value in flags.items():
        if name == "remote_header":
            values[name] = [*values.get(name, []), *value]
        elif value is not None:
            values[name] = value
    headers = [_header(h) for h in values.get("remote_header", [])]
    options = RemoteOptions(
        cache=str(values.get("remote_cache") or ""), executor=str(values.get("remote_executor") or ""),
        upload_local_results=bool(values.get("remote_upload_local_results", True)),
        timeout=_seconds(values.get("remote_timeout") or 60), instance_name=str(values.get("remote_instance_name") or ""))
    _check_url(options.cache, "--remote_cache", _CACHE_SCHEMES)
    _check_url(options.executor, "--remote_executor", _EXECUTOR_SCHEMES)
    if not any(name.lower() == "authorization" for name, _ in headers):
        headers += _netrc_auth(options.executor or options.cache)
    return dataclasses.replace(options, headers=tuple(headers))


def read_kilnrc(path: Path, command: str) -> dict[str, object]:
    values: dict[str, object] = {}
    if not path.is_file():
        return values
    for number, line in enumerate(path.read_text().splitlines(), 1):
        words = shlex.split(line, comments=True)
        if not words or words[0] not in ("build", command):
            continue
        for word in words[1:]:
            name, value = _flag(word, f"{path}:{number}")
            if name == "remote_header":
                values.setdefault(name, []).append(value)
            else:
                values[name] = value
    return values


def _flag(word: str, where: str) -> tuple[str, object]:
    name, has_value, value = word.removeprefix("--").partition("=")
    if name == "noremote_upload_local_results" and not has_value:
        return "remote_upload_local_results", False
    if name == "remote_upload_local_results":
        return name, value.lower() not in ("false", "no", "0") if has_value else True
    if not word.startswith("--") or not has_value or name not in (
            "remote_cache", "remote_executor", "remote_header", "remote_timeout", "remote_instance_name"):
        raise UserError(f"{where}: '{word}' is not a remote option (.kilnrc takes --remote_*=VALUE)")
    return name, value


def _seconds(value: object) -> float:
    try:
        return float(value)
    except ValueError:
        raise UserError(f"--remote_timeout={value}: expected a number of seconds") from None


def _header(text: str) -> tuple[str, str]:
    name, has_value, value = text.partition("=")
    if not has_value or not name:
        raise UserError(f"--remote_header={text}: expected NAME=VALUE")
    return name, value


def _check_url(url: str, flag: str, schemes: tuple[str, ...]) -> None:
    parts = urlsplit(url)
    if url and (parts.scheme not in schemes or not parts.netloc):
        raise UserError(f"{flag}={redact_url(url)}: expected {' or '.join(f'{s}://HOST:PORT' for s in schemes)}")


def _netrc_auth(url: str) -> list[tuple[str, str]]:
    """Basic credentials for the remote's host from ~/.netrc (or $NETRC), as curl and Bazel read it."""
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    if not url or not os.path.isfile(path):
        return []
    try:
        entry = netrc.netrc(path).authenticators(urlsplit(url).hostname or "")
    except (netrc.NetrcParseError, OSError) as error:
        raise UserError(f"{path}: {error}") from None
    if entry is None:
        return []
    login, _, password = entry
    return [("Authorization", "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode())]

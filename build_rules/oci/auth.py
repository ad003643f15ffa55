"""Registry credentials and authorization, the way docker finds and uses them.

Credentials for a registry host come from `$DOCKER_CONFIG/config.json` (default
`~/.docker/config.json`): `credHelpers[host]`, else `credsStore` (both run
`docker-credential-<helper> get`), else `auths[host]` (base64 `auth` of "user:password").
`Authorizer` answers a registry's `WWW-Authenticate` challenge: HTTP basic, or the bearer-token
flow (ask the `realm` for a token for `service` and the scopes a push needs).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import requests


class AuthError(Exception):
    """Credentials are missing, unreadable, or refused."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = ""


def config_path() -> Path:
    directory = os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker"
    return Path(directory) / "config.json"


def _host(key: str) -> str:
    """`https://host:5000/v1/` -> `host:5000`: how docker config keys name a registry."""
    return re.sub(r"^[a-z]+://", "", key).split("/", 1)[0]


def _from_helper(helper: str, host: str) -> Credentials | None:
    program = f"docker-credential-{helper}"
    try:
        done = subprocess.run([program, "get"], input=host, capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise AuthError(f"{config_path()} names credential helper '{helper}', but {program} is not on PATH") from None
    except subprocess.TimeoutExpired:
        raise AuthError(f"{program} get did not answer within 60 s") from None
    if done.returncode != 0:
        if "credentials not found" in (done.stdout + done.stderr).lower():
            return None
        raise AuthError(f"{program} get failed: {(done.stderr or done.stdout).strip()[:200]}")
    try:
        answer = json.loads(done.stdout)
        return Credentials(answer["Username"], answer["Secret"])
    except (ValueError, KeyError, TypeError):
        raise AuthError(f"{program} get printed no Username/Secret JSON") from None


def _from_auths(auths: dict, host: str) -> Credentials | None:
    for key, entry in sorted(auths.items()):
        if _host(key) != host:
            continue
        if entry.get("auth"):
            try:
                username, _, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except ValueError:
                raise AuthError(f"{config_path()}: auths['{key}'].auth is not base64 of user:password") from None
            return Credentials(username, password)
        if entry.get("username"):
            return Credentials(entry["username"], entry.get("password", ""))
    return None


def credentials_for(host: str) -> Credentials | None:
    """Docker's credentials for a registry host ("127.0.0.1:5000"), or None to go anonymous."""
    path = config_path()
    try:
        config = json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError) as e:
        raise AuthError(f"cannot read {path}: {e}") from None
    helper = config.get("credHelpers", {}).get(host) or config.get("credsStore")
    if helper:
        return _from_helper(helper, host)
    return _from_auths(config.get("auths", {}), host)


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """`Bearer realm="…",service="…",scope="…"` -> ("bearer", {realm, service, scope})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {key.lower(): quoted or bare for key, quoted, bare in re.findall(r'(\w+)=(?:"([^"]*)"|([^,\s]*))', rest)}
    return scheme.lower(), params


def _basic(credentials: Credentials) -> str:
    return "Basic " + base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()


class Authorizer:
    """The Authorization header for one registry, renewed when the registry challenges it."""

    def __init__(self, session: requests.Session, host: str, credentials: Credentials | None, scopes: list[str]):
        self.session, self.host, self.credentials, self.scopes = session, host, credentials, scopes
        self.header: dict[str, str] = {}
        self.accepted = False  # a request with `header` succeeded: a later 401 means it expired

    def answer(self, response: requests.Response) -> None:
        """Set a header that answers this 401, or raise AuthError if there is nothing left to try."""
        scheme, params = parse_challenge(response.headers.get("WWW-Authenticate", ""))
        refused, self.accepted = bool(self.header) and not self.accepted, False
        if scheme == "basic":
            if self.credentials is None:
                raise AuthError(f"{self.host} requires credentials, and {config_path()} has none for it")
            if refused:
                raise AuthError(f"{self.host} refused the credentials of user '{self.credentials.username}'")
            self.header = {"Authorization": _basic(self.credentials)}
        elif scheme == "bearer" and "realm" in params:
            if refused:
                raise AuthError(f"{self.host} refused the token it was given for {' '.join(self.scopes)}")
            self.header = {"Authorization": "Bearer " + self._token(params)}
        else:
            raise AuthError(f"{self.host} asks for unsupported authorization '{scheme or 'none'}'")

    def _token(self, params: dict[str, str]) -> str:
        scopes = sorted({*params.get("scope", "").split(), *self.scopes})
        query = [("service", params["service"])] if "service" in params else []
        query += [("scope", scope) for scope in scopes]
        headers = {"Authorization": _basic(self.credentials)} if self.credentials else {}
        try:
            response = self.session.get(params["realm"], params=query, headers=headers, timeout=(10, 60))
        except requests.RequestException as e:
            raise AuthError(f"token server {params['realm']} unreachable: {e}") from None
        if response.status_code in (401, 403):
            who = f"user '{self.credentials.username}'" if self.credentials else "anonymous access"
            raise AuthError(f"token server {params['realm']} refused {who} ({response.status_code})")
        try:
            response.raise_for_status()
            answer = response.json()
            return answer.get("token") or answer["access_token"]
        except (requests.HTTPError, ValueError, KeyError) as e:
            raise AuthError(f"token server {params['realm']} gave no token: {e}") from None

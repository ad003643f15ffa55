"""One repository on a registry, through the OCI distribution API (the calls a push needs).

    repo = Repository(Reference.parse("127.0.0.1:5000/mnist"), credentials_for("127.0.0.1:5000"))
    repo.ping()
    status = repo.push_blob(layout.blob(d.digest), d)   # "skipped", "mounted" or "uploaded"
    repo.put_manifest(d.digest, body, d.media_type)

Blobs no larger than the chunk size go up in one `POST` + `PUT ?digest=`; larger ones in `PATCH`
chunks. Connection errors, 429 and 5xx are retried with exponential backoff, a bounded number of
times; a blob upload is retried from a fresh upload session.
"""

from __future__ import annotations

import ipaddress
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, TypeVar
from urllib.parse import urljoin

import requests

from kiln.build_rules.oci.auth import AuthError, Authorizer, Credentials
from kiln.build_rules.oci.layout import Descriptor
from kiln.build_rules.redact import redact_url

T = TypeVar("T")
TIMEOUT = (10, 300)  # connect, read (seconds)
_REPOSITORY = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}")


class RegistryError(Exception):
    """The registry is unreachable, refused a request, or answered something unexpected."""


class _Transient(Exception):
    """A failure worth retrying: 429, 5xx."""


def is_loopback(host: str) -> bool:
    """127.0.0.0/8, ::1 or localhost, with or without a port."""
    name = host[1:].partition("]")[0] if host.startswith("[") else host.rpartition(":")[0] or host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Reference:
    host: str  # "127.0.0.1:5000"
    repository: str  # "team/mnist"

    @classmethod
    def parse(cls, text: str) -> Reference:
        host, _, repository = text.partition("/")
        if "@" in host:
            raise RegistryError(f"'{redact_url(text)}': credentials do not belong in the repository; "
                                "kiln takes them from ~/.docker/config.json and credential helpers")
        if not repository or not ("." in host or ":" in host or host == "localhost"):
            raise RegistryError(f"'{redact_url(text)}' does not start with a registry host (e.g. 127.0.0.1:5000/mnist)")
        if not _REPOSITORY.fullmatch(repository):
            raise RegistryError(f"'{repository}' is not a valid repository name (lowercase, digits, . _ - /)")
        return cls(host, repository)

    def __str__(self) -> str:
        return f"{self.host}/{self.repository}"


def check_tag(tag: str) -> str:
    if not _TAG.fullmatch(tag):
        raise RegistryError(f"'{tag}' is not a valid tag")
    return tag


def _describe(error: Exception) -> str:
    """The useful end of a requests error ("Connection refused"), not urllib3's nesting."""
    text = str(error)
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)|(Connection reset by peer|Remote end closed connection"
                      r" without response|Read timed out|Connection aborted)", text)
    return (found.group(1) or found.group(2)).strip() if found else text[:200]


def _error(response: requests.Response) -> str:
    """The registry's error code and message from its JSON body, or the HTTP status."""
    try:
        errors = response.json()["errors"]
        return "; ".join(f"{e.get('code', '?')}: {e.get('message', '')}" for e in errors)
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"HTTP {response.status_code} {response.reason}"


class Repository:
    def __init__(self, reference: Reference, credentials: Credentials | None, *, insecure: bool = False,
                 chunk_size: int = 16 << 20, attempts: int = 4, backoff: float = 0.5, mount_from: str | None = None):
        loopback = is_loopback(reference.host)
        self.root = f"{'http' if insecure or loopback else 'https'}://{reference.host}"
        self.base = f"{self.root}/v2/{reference.repository}"
        self.chunk_size, self.attempts, self.backoff, self.mount_from = chunk_size, attempts, backoff, mount_from
        self.session = requests.Session()
        self.session.trust_env = not loopback  # never send loopback traffic through a proxy
        scopes = [f"repository:{reference.repository}:pull,push"]
        scopes += [f"repository:{mount_from}:pull"] if mount_from else []
        self.auth = Authorizer(self.session, reference.host, credentials, scopes)

    def _send(self, method: str, url: str, ok: tuple[int, ...], **kwargs) -> requests.Response:
        """One request; authorize and re-send on 401. Raises _Transient or RegistryError unless status in ok."""
        headers = kwargs.pop("headers", {})
        while True:
            response = self.session.request(method, url, headers={**headers, **self.auth.header}, timeout=TIMEOUT,
                                            **kwargs)
            if response.status_code != 401:
                break
            self.auth.answer(response)
        self.auth.accepted = True
        if response.status_code in ok:
            return response
        if response.status_code == 429 or response.status_code >= 500:
            raise _Transient(f"{method} {url}: {_error(response)}")
        raise RegistryError(_error(response))

    def _retrying(self, what: str, call: Callable[[], T]) -> T:
        attempt = 1
        while True:
            try:
                return call()
            except (requests.ConnectionError, requests.Timeout, _Transient) as e:
                if attempt >= self.attempts:
                    raise RegistryError(f"{what}: {_describe(e)} (gave up after {attempt} attempts)") from None
                time.sleep(self.backoff * 2 ** (attempt - 1))
                attempt += 1
            except (RegistryError, AuthError) as e:
                raise RegistryError(f"{what}: {e}") from None

    def ping(self) -> None:
        """Check the registry answers the v2 API and that we are authorized for the push."""
        self._retrying(f"registry {self.root}", lambda: self._send("GET", f"{self.root}/v2/", (200,)))

    def push_blob(self, path: Path, blob: Descriptor) -> str:
        """Make the registry hold `blob`: "skipped" (already there), "mounted" or "uploaded"."""
        what = f"blob {blob.digest} ({blob.media_type}, {blob.size} bytes)"
        return self._retrying(what, lambda: self._push_blob_once(path, blob))

    def _push_blob_once(self, path: Path, blob: Descriptor) -> str:
        if self._send("HEAD", f"{self.base}/blobs/{blob.digest}", (200, 404)).status_code == 200:
            return "skipped"
        params = {"mount": blob.digest, "from": self.mount_from} if self.mount_from else {}
        started = self._send("POST", f"{self.base}/blobs/uploads/", (201, 202), params=params)
        if started.status_code == 201:
            return "mounted"
        self._upload(self._location(started), path, blob)
        return "uploaded"

    def _upload(self, location: str, path: Path, blob: Descriptor) -> None:
        """One PUT up to the chunk size; beyond it, PATCH chunks and a closing empty PUT."""
        octets, digest = {"Content-Type": "application/octet-stream"}, {"digest": blob.digest}
        with path.open("rb") as source:
            if blob.size <= self.chunk_size:
                self._send("PUT", location, (201,), params=digest, data=source.read(), headers=octets)
                return
            for offset in range(0, blob.size, self.chunk_size):
                chunk = source.read(self.chunk_size)
                headers = {**octets, "Content-Range": f"{offset}-{offset + len(chunk) - 1}"}
                location = self._location(self._send("PATCH", location, (202,), data=chunk, headers=headers))
        self._send("PUT", location, (201,), params=digest, data=b"", headers=octets)

    def _location(self, response: requests.Response) -> str:
        location = response.headers.get("Location")
        if not location:
            raise RegistryError(f"{response.request.method} {response.url} answered without a Location")
        return urljoin(self.root + "/", location)

    def put_manifest(self, reference: str, body: bytes, media_type: str, digest: str) -> None:
        """PUT a manifest or index under a digest or a tag; the registry must agree on its digest."""
        def put() -> None:
            response = self._send("PUT", f"{self.base}/manifests/{reference}", (201,), data=body,
                                  headers={"Content-Type": media_type})
            answered = response.headers.get("Docker-Content-Digest", digest)
            if answered != digest:
                raise RegistryError(f"registry computed {answered}, expected {digest}")
        self._retrying(f"manifest {reference}", put)

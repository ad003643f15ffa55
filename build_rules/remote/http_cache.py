"""Bazel's HTTP cache protocol: `GET/PUT <url>/ac/<action key>` and `<url>/cas/<sha256>`.

Any server Bazel can use serves kiln too (bazel-remote, nginx with WebDAV PUT, ...). The action
cache holds REAPI `ActionResult` messages, as Bazel writes them.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

import requests
from google.protobuf.message import DecodeError

from kiln.build_rules.remote.base import BadEntry, RemoteError, RemoteStats
from kiln.build_rules.remote.cache import Blob
from kiln.build_rules.remote.protos import ActionResult, Digest

_CHUNK = 1 << 20


class HttpCache:
    def __init__(self, url: str, headers: tuple[tuple[str, str], ...], timeout: float, stats: RemoteStats):
        self.url, self.headers, self.timeout, self.stats = url.rstrip("/"), dict(headers), timeout, stats
        self._local = threading.local()  # a requests.Session is not meant to be shared by threads

    def get_action_result(self, key: str) -> ActionResult | None:
        response = self._request("GET", f"ac/{key}")
        if response.status_code == 404:
            return None
        self.stats.count(bytes_down=len(response.content))
        try:
            return ActionResult.FromString(response.content)
        except DecodeError:
            raise BadEntry(f"ac/{key} is not an ActionResult") from None

    def put_action_result(self, key: str, result: ActionResult) -> None:
        data = result.SerializeToString(deterministic=True)
        self._request("PUT", f"ac/{key}", data=data)
        self.stats.count(bytes_up=len(data))

    def find_missing(self, digests: list[Digest]) -> list[Digest]:
        return [d for d in digests if self._request("HEAD", f"cas/{d.hash}").status_code == 404]

    def upload(self, blobs: list[Blob]) -> None:
        for digest, content in blobs:
            if isinstance(content, bytes):
                self._request("PUT", f"cas/{digest.hash}", data=content)
            else:
                with open(content, "rb") as data:
                    self._request("PUT", f"cas/{digest.hash}", data=data)
            self.stats.count(bytes_up=digest.size_bytes)

    def download(self, wanted: list[tuple[Digest, Path]]) -> None:
        for digest, path in wanted:
            with self._request("GET", f"cas/{digest.hash}", stream=True) as response:
                if response.status_code == 404:
                    raise BadEntry(f"blob {digest.hash} is missing")
                with open(path, "wb") as out:
                    for chunk in response.iter_content(_CHUNK):
                        out.write(chunk)
                        self.stats.count(bytes_down=len(chunk))

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers.update(self.headers)
        try:
            response = session.request(method, f"{self.url}/{path}", timeout=self.timeout, **kwargs)
        except requests.Timeout:
            raise RemoteError(f"no answer within {self.timeout:g}s") from None
        except requests.RequestException as error:
            raise RemoteError(_reason(error)) from None
        if response.status_code >= 400 and response.status_code != 404:
            raise RemoteError(f"{method} /{path}: HTTP {response.status_code} {response.reason}")
        return response


def _reason(error: requests.RequestException) -> str:
    """The errno text of a connection error ('Connection refused'), not urllib3's whole chain."""
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", str(error))
    return f"cannot connect: {found.group(1)}" if found else f"cannot connect: {type(error).__name__}"

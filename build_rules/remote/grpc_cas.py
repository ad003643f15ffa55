"""The REAPI v2 ActionCache and ContentAddressableStorage services over gRPC.

Small blobs travel in batches (BatchUpdateBlobs, BatchReadBlobs) up to the server's advertised
batch size; larger ones through ByteStream Write/Read in 1 MiB chunks.
"""

from __future__ import annotations

import functools
import io
import tempfile
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

from kiln.build_rules.remote.base import BadEntry, RemoteError, RemoteStats
from kiln.build_rules.remote.cache import Blob
from kiln.build_rules.remote.protos import ActionResult, Digest, bytestream, bytestream_grpc, grpc, reapi, reapi_grpc
_CHUNK = 1 << 20
_BATCH_LIMIT = 4 << 20  # gRPC's default message size, when the server names no smaller one
_BATCH_OVERHEAD = 64 << 10
_ENTRY_OVERHEAD = 128  # bytes a batch spends per blob besides its data (digest, status, framing)


class GrpcCas:
    def __init__(self, url: str, instance: str, headers: tuple[tuple[str, str], ...], timeout: float,
                 stats: RemoteStats):
        target = url.split("://", 1)[1].rstrip("/")
        self.channel = grpc.secure_channel(target, grpc.ssl_channel_credentials()) \
            if url.startswith("grpcs://") else grpc.insecure_channel(target)
        self.instance, self.timeout, self.stats = instance, timeout, stats
        self.metadata = tuple((name.lower(), value) for name, value in headers)
        self.action_cache = reapi_grpc.ActionCacheStub(self.channel)
        self.cas = reapi_grpc.ContentAddressableStorageStub(self.channel)
        self.bytestream = bytestream_grpc.ByteStreamStub(self.channel)
        self.capabilities_service = reapi_grpc.CapabilitiesStub(self.channel)

    def call(self, method: Callable[..., Any], request: Any) -> Any:
        """One RPC with kiln's deadline and headers; a failure becomes a RemoteError."""
        try:
            return method(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.RpcError as error:
            raise RemoteError(rpc_reason(error)) from None

    @functools.cached_property
    def server_capabilities(self) -> reapi.ServerCapabilities:
        capabilities = self.call(self.capabilities_service.GetCapabilities,
                                 reapi.GetCapabilitiesRequest(instance_name=self.instance))
        # field 1: REAPI 2.3 renamed it digest_functions; the protos kiln uses are of the revision before
        functions = capabilities.cache_capabilities.digest_function
        if functions and reapi.DigestFunction.SHA256 not in functions:
            raise RemoteError("the server does not take SHA-256 digests")
        return capabilities

    def get_action_result(self, key: str) -> ActionResult | None:
        request = reapi.GetActionResultRequest(instance_name=self.instance, action_digest=_key_digest(key))
        try:
            result = self.action_cache.GetActionResult(request, timeout=self.timeout, metadata=self.metadata)
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise RemoteError(rpc_reason(error)) from None
        self.stats.count(bytes_down=result.ByteSize())
        return result

    def put_action_result(self, key: str, result: ActionResult) -> None:
        request = reapi.UpdateActionResultRequest(instance_name=self.instance, action_digest=_key_digest(key),
                                                  action_result=result)
        self.call(self.action_cache.UpdateActionResult, request)
        self.stats.count(bytes_up=result.ByteSize())

    def find_missing(self, digests: list[Digest]) -> list[Digest]:
        missing = []
        for start in range(0, len(digests), 10_000):
            request = reapi.FindMissingBlobsRequest(instance_name=self.instance, blob_digests=digests[start:start + 10_000])
            missing += self.call(self.cas.FindMissingBlobs, request).missing_blob_digests
        return missing

    def upload(self, blobs: list[Blob]) -> None:
        small = [b for b in blobs if b[0].size_bytes <= self._batch_limit()]
        for batch in self._batches(small):
            requests = [reapi.BatchUpdateBlobsRequest.Request(digest=d, data=_read(content)) for d, content in batch]
            response = self.call(self.cas.BatchUpdateBlobs,
                                 reapi.BatchUpdateBlobsRequest(instance_name=self.instance, requests=requests))
            for answer in response.responses:
                if answer.status.code:
                    raise RemoteError(f"uploading {answer.digest.hash}: {answer.status.message}")
            self.stats.count(bytes_up=sum(d.size_bytes for d, _ in batch))
        for digest, content in blobs:
            if digest.size_bytes > self._batch_limit():
                self._write(digest, content)

    def download(self, wanted: list[tuple[Digest, Path]]) -> None:
        small = [w for w in wanted if w[0].size_bytes <= self._batch_limit()]
        for batch in self._batches(small):
            paths = {d.hash: path for d, path in batch}
            request = reapi.BatchReadBlobsRequest(instance_name=self.instance, digests=[d for d, _ in batch])
            for answer in self.call(self.cas.BatchReadBlobs, request).responses:
                if answer.status.code:
                    raise BadEntry(f"blob {answer.digest.hash}: {answer.status.message or 'missing'}")
                paths[answer.digest.hash].write_bytes(answer.data)
                self.stats.count(bytes_down=len(answer.data))
        for digest, path in wanted:
            if digest.size_bytes > self._batch_limit():
                self._read(digest, path)

    def read_blob(self, digest: Digest) -> bytes:
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "blob"
            self.download([(digest, path)])
            return path.read_bytes()

    def _batch_limit(self) -> int:
        advertised = self.server_capabilities.cache_capabilities.max_batch_total_size_bytes
        return min(advertised or _BATCH_LIMIT, _BATCH_LIMIT) - _BATCH_OVERHEAD

    def _batches(self, items: list) -> Iterator[list]:
        batch, size = [], 0
        for item in items:
            if batch and size + item[0].size_bytes + _ENTRY_OVERHEAD > self._batch_limit():
                yield batch
                batch, size = [], 0
            batch.append(item)
            size += item[0].size_bytes + _ENTRY_OVERHEAD
        if batch:
            yield batch

    def _write(self, digest: Digest, content: Path | bytes) -> None:
        resource = self._resource(f"uploads/{uuid.uuid4()}/blobs/{digest.hash}/{digest.size_bytes}")

        def chunks() -> Iterator[bytestream.WriteRequest]:
            with (io.BytesIO(content) if isinstance(content, bytes) else open(content, "rb")) as source:
                offset = 0
                while True:
                    data = source.read(_CHUNK)
                    last = offset + len(data) >= digest.size_bytes
                    yield bytestream.WriteRequest(resource_name=resource if offset == 0 else "", write_offset=offset,
                                                  data=data, finish_write=last)
                    offset += len(data)
                    if last:
                        return

        response = self.call(self.bytestream.Write, chunks())
        if response.committed_size != digest.size_bytes:
            raise RemoteError(f"uploading {digest.hash}: the server committed {response.committed_size} bytes")
        self.stats.count(bytes_up=digest.size_bytes)

    def _read(self, digest: Digest, path: Path) -> None:
        request = bytestream.ReadRequest(resource_name=self._resource(f"blobs/{digest.hash}/{digest.size_bytes}"))
        try:
            with open(path, "wb") as out:
                for response in self.bytestream.Read(request, timeout=self.timeout, metadata=self.metadata):
                    out.write(response.data)
                    self.stats.count(bytes_down=len(response.data))
        except grpc.RpcError as error:
            if error.code() == grpc.StatusCode.NOT_FOUND:
                raise BadEntry(f"blob {digest.hash} is missing") from None
            raise RemoteError(rpc_reason(error)) from None

    def _resource(self, name: str) -> str:
        return f"{self.instance}/{name}" if self.instance else name


def rpc_reason(error: grpc.RpcError) -> str:
    details = (error.details() or "").splitlines()
    return f"{error.code().name}: {details[0] if details else 'no details'}"


def _key_digest(key: str) -> Digest:
    """kiln's action key as an action-cache digest (it hashes kiln's own encoding, not an Action message)."""
    return Digest(hash=key, size_bytes=0)


def _read(content: Path | bytes) -> bytes:
    return content if isinstance(content, bytes) else Path(content).read_bytes()

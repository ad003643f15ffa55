"""Remote execution through the REAPI v2 Execution service.

An action becomes a `Command` (argv, sorted env, output paths, platform) and an `Action` whose
input root is the Merkle tree of its inputs, laid out as in the local sandbox. kiln uploads the
blobs the server lacks, calls Execute, follows the long-running operation (WaitExecution when
the stream breaks), then downloads and verifies the outputs.

A worker of the client's ISA needs no install beyond a POSIX shell and the libraries manylinux wheels
may assume (glibc, libstdc++, libgcc_s, zlib): the tools an action runs (zig with its warmed cache, a
relocatable Python with the pinned distributions and kiln's packages, pinned external trees) are
directories of its input root (remote.tool_trees), named relative to the execution root. Each tree's
blobs are sent once: a blob the server was found to hold is not asked about again in the same build.
"""

from __future__ import annotations

import platform
import threading
from typing import Iterable

from kiln.build_rules.actions import Action
from kiln.build_rules.remote.base import InputFile, RemoteError, RemoteRun
from kiln.build_rules.remote.cache import Blob, describe_blob, fetch_outputs, upload_missing
from kiln.build_rules.remote.grpc_cas import GrpcCas, rpc_reason
from kiln.build_rules.remote.merkle import FileNode, LinkNode, digest_of, input_root
from kiln.build_rules.remote.protos import Operation, grpc, reapi, reapi_grpc
from kiln.build_rules.store import Store

_ISA = {"x86_64": "x86-64", "amd64": "x86-64", "aarch64": "aarch64", "arm64": "aarch64"}
_RETRIES = 3

# Locally `$EXECROOT` in an argument becomes the sandbox's root; a worker's root is only known
# where the command runs, so a shell there substitutes its working directory.
_EXECROOT_SHIM = ("root=$(pwd -P); for arg do shift; while :; do case $arg in *'$EXECROOT'*) "
                  "arg=${arg%%'$EXECROOT'*}$root${arg#*'$EXECROOT'};; *) break;; esac; done; "
                  'set -- "$@" "$arg"; done; exec "$@"')


class GrpcExecutor:
    def __init__(self, cas: GrpcCas):
        self.cas = cas
        self.execution = reapi_grpc.ExecutionStub(cas.channel)
        isa = _ISA.get(platform.machine().lower(), platform.machine().lower())
        self.platform = reapi.Platform(properties=[reapi.Platform.Property(name="ISA", value=isa),
                                                   reapi.Platform.Property(name="OSFamily", value="linux")])
        self._present: set[str] = set()  # blobs the server holds, as far as this build knows
        self._upload_lock = threading.Lock()

    def execute(self, action: Action, argv: list[str], env: dict[str, str],
                inputs: dict[str, InputFile], store: Store) -> RemoteRun:
        if not self.cas.server_capabilities.execution_capabilities.exec_enabled:
            raise RemoteError("the server does not execute actions")
        action_digest, blobs = self._messages(action, argv, env, inputs)
        self._upload(blobs)
        response = self._execute(action_digest)
        result = response.result
        outputs = fetch_outputs(result, self.cas, store) if result.exit_code == 0 else {}
        return RemoteRun(result.exit_code, self._stderr(result), outputs, response.cached_result)

    def _upload(self, blobs: dict[str, Blob]) -> None:
        """One upload at a time, so that actions started together never send the same tool tree twice."""
        with self._upload_lock:
            upload_missing(self.cas, {h: blob for h, blob in blobs.items() if h not in self._present})
            self._present.update(blobs)

    def _messages(self, action: Action, argv: list[str], env: dict[str, str],
                  inputs: dict[str, InputFile]) -> tuple[reapi.Digest, dict[str, Blob]]:
        """The `Action` digest, and every blob the server needs to run it: messages, directories, inputs."""
        directories = sorted(o.path for o in action.outputs if o.directory)
        files = sorted(o.path for o in action.outputs if not o.directory)
        command = reapi.Command(
            arguments=_with_execroot(argv),
            environment_variables=[reapi.Command.EnvironmentVariable(name=k, value=v) for k, v in sorted(env.items())],
            output_files=files, output_directories=directories, output_paths=sorted(files + directories),
            platform=self.platform)
        nodes = {path: LinkNode(i.link) if i.link else FileNode(i.digest, i.local.stat().st_size, i.executable)
                 for path, i in inputs.items()}
        root, tree_blobs = input_root(nodes, directories)
        encoded_command = command.SerializeToString(deterministic=True)
        message = reapi.Action(command_digest=digest_of(encoded_command), input_root_digest=root, platform=self.platform)
        encoded_action = message.SerializeToString(deterministic=True)
        blobs = dict(describe_blob(data) for data in [encoded_command, encoded_action, *tree_blobs.values()])
        for path, node in nodes.items():
            if isinstance(node, FileNode):
                blobs[node.digest] = (reapi.Digest(hash=node.digest, size_bytes=node.size), inputs[path].local)
        return digest_of(encoded_action), blobs

    def _execute(self, action_digest: reapi.Digest) -> reapi.ExecuteResponse:
        request = reapi.ExecuteRequest(instance_name=self.cas.instance, action_digest=action_digest)
        operation = self._follow(self.execution.Execute(request, metadata=self.cas.metadata), None)
        for _ in range(_RETRIES):
            if operation.done:
                break
            wait = reapi.WaitExecutionRequest(name=operation.name)
            operation = self._follow(self.execution.WaitExecution(wait, metadata=self.cas.metadata), operation)
        if not operation.done:
            raise RemoteError(f"lost track of operation {operation.name}")
        if operation.HasField("error"):
            raise RemoteError(f"execution failed: {operation.error.message}")
        response = reapi.ExecuteResponse()
        operation.response.Unpack(response)
        if response.status.code:
            raise RemoteError(f"execution failed: {response.status.message}")
        return response

    def _follow(self, stream: Iterable[Operation], operation: Operation | None) -> Operation:
        """The last operation state a stream reports; a stream that breaks after one is followed later."""
        try:
            for operation in stream:
                if operation.done:
                    break
        except grpc.RpcError as error:
            if operation is None or error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise RemoteError(rpc_reason(error)) from None
        if operation is None:
            raise RemoteError("the server closed the execution stream without an operation")
        return operation

    def _stderr(self, result: reapi.ActionResult) -> str:
        if result.stderr_raw or not result.stderr_digest.size_bytes:
            return result.stderr_raw.decode(errors="replace")
        return self.cas.read_blob(result.stderr_digest).decode(errors="replace")


def _with_execroot(argv: list[str]) -> list[str]:
    return ["/bin/sh", "-c", _EXECROOT_SHIM, "sh", *argv] if any("$EXECROOT" in a for a in argv) else argv

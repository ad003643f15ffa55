"""The generated REAPI, ByteStream and long-running-operation modules, as buildgrid-common ships them
(the protos alone, without BuildGrid's server and its database stack), and the gRPC runtime.

Imported only when a build uses a remote, so kiln itself runs without them.
"""

from __future__ import annotations

from kiln.build_rules.errors import UserError

try:
    import grpc
    from buildgrid.common.protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as reapi
    from buildgrid.common.protos.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as reapi_grpc
    from buildgrid.common.protos.google.bytestream import bytestream_pb2 as bytestream
    from buildgrid.common.protos.google.bytestream import bytestream_pb2_grpc as bytestream_grpc
    from buildgrid.common.protos.google.longrunning.operations_pb2 import Operation
except ImportError:  # pragma: no cover - depends on the installation
    raise UserError("remote caching and execution need the REAPI protobuf modules: pip install 'kiln[remote]'") from None

Digest = reapi.Digest
ActionResult = reapi.ActionResult
Directory = reapi.Directory
Tree = reapi.Tree

__all__ = ["grpc", "reapi", "reapi_grpc", "bytestream", "bytestream_grpc", "Operation",
           "Digest", "ActionResult", "Directory", "Tree"]

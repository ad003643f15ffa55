"""The generated REAPI, ByteStream and long-running-operation modules, as BuildGrid's package ships
them, and the gRPC runtime they come with.

Imported only when a build uses a remote, so kiln itself runs without them.
"""

from __future__ import annotations

from kiln.build_rules.errors import UserError

try:
    import grpc
    from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2 as reapi
    from buildgrid._protos.build.bazel.remote.execution.v2 import remote_execution_pb2_grpc as reapi_grpc
    from buildgrid._protos.google.bytestream import bytestream_pb2 as bytestream
    from buildgrid._protos.google.bytestream import bytestream_pb2_grpc as bytestream_grpc
    from buildgrid._protos.google.longrunning.operations_pb2 import Operation
except ImportError:  # pragma: no cover - depends on the installation
    raise UserError("remote caching and execution need the REAPI protobuf modules: pip install buildgrid") from None

Digest = reapi.Digest
ActionResult = reapi.ActionResult
Directory = reapi.Directory
Tree = reapi.Tree

__all__ = ["grpc", "reapi", "reapi_grpc", "bytestream", "bytestream_grpc", "Operation",
           "Digest", "ActionResult", "Directory", "Tree"]

"""kiln's model compiler: ONNX (+ safetensors) -> graph IR -> passes -> backends.

Layers, in order: frontend/ (ONNX import) -> ir/ (graph, op semantics) -> passes/ ->
backend/cpu/ (LLVM IR via llvmlite) -> driver (object, weights, manifest)."""
from .errors import CompileError

__all__ = ["CompileError"]

"""kiln's model compiler: ONNX (+ safetensors) -> graph IR -> passes -> backends.

Layers, in order: frontend/ (ONNX import) -> ir/ (graph, op semantics) -> passes/ ->
backend/<kind>/ (one Backend each: cpu, gpu, stablehlo) -> driver (code files, weights, manifest.json
in manifest.py's schema). platforms.py names every platform and host and its backend."""
from .errors import CompileError

__all__ = ["CompileError"]

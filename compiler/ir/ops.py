"""All IR op definitions; importing this module fills the registry."""
from . import fused, ops_elementwise, ops_nn, ops_quant, ops_shape  # noqa: F401  (registration side effects)
from .registry import OPS, OpDef

__all__ = ["OPS", "OpDef"]

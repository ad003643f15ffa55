"""All IR op definitions; importing this module fills the registry."""
from . import fused, ops_elementwise, ops_nn, ops_quant, ops_seq, ops_shape  # noqa: F401  (registration side effects)
from . import ops_dft, ops_grid, ops_index, ops_linear, ops_resize  # noqa: F401  (indexing, resizing, ConvTranspose, Einsum)
from . import ops_rotary  # noqa: F401  (RotaryEmbedding)
from . import ops_qint  # noqa: F401  (MatMulInteger, QLinearMatMul, ConvInteger, QLinearConv)
from . import ops_unpool  # noqa: F401  (MaxUnpool, ReverseSequence)
from . import ops_linalg, ops_roi  # noqa: F401  (Det, RoiAlign, DeformConv)
from .registry import OPS, OpDef

__all__ = ["OPS", "OpDef"]

"""GPU backends: one kernel description (kir) per fused op group, lowered to NVPTX, AMDGPU or
plain CPU loops over the grid (for testing the arithmetic without a GPU)."""

"""GPU backends: one kernel description (kir) per fused op group, lowered to NVPTX, AMDGPU or
plain CPU loops over the grid (for testing the arithmetic without a GPU). The LLVM emitter, the
fused elementwise programs and the memory plan come from `backend.llvm`, never from `backend.cpu`.

GEMM/conv, pooling and depthwise windows, and the row ops (Softmax, LayerNormalization,
reductions) exist in `backend.cpu` too, on purpose: the two split the work for different
machines. The CPU packs constant B into 64-column panels at build time and holds a 6-row
micro-tile of C in vector registers, one thread-pool task per block of rows and panel; here a
block of 256 threads stages BK x BN tiles of A and B in shared memory, each thread keeps a
TM x TN register tile, and a conv's input patch is gathered while the tiles load. A CPU pooling
or row task loops over a whole row, vectorised along the channels or the row; here a window op
runs one thread per output element, and a row is one block whose threads stride along it and
meet in a warp-shuffle reduction. What is the same in both is shared: window geometry
(`ir.ops_nn.spatial_2d`), LayerNormalization's scale/bias (`ir.ops_nn.layer_norm_param`) and
the arithmetic of fused programs and epilogues (`backend.llvm.program`, `backend.llvm.mathfn`)."""

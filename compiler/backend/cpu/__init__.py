"""CPU backend: one LLVM-IR emitter (llvmlite) for x86_64 and aarch64. The emitter and the other
helpers the GPU backend needs too live in `backend.llvm`; why GEMM, pooling and the row ops are
written again for the GPU is said in `backend.gpu`."""

"""CPU backend: one LLVM-IR emitter (llvmlite) for x86_64 and aarch64."""

"""The LLVM layer the llvmlite backends (cpu, gpu) share: the IR emitter, transcendental functions,
fused elementwise programs, static memory plans, and target machines with the O3 pipeline."""

"""Code generators for compiled graphs. `cpu`, `gpu` and `stablehlo` are siblings that never
import each other; what the two llvmlite backends share is the `llvm` layer."""

"""StableHLO backend: the IR after shape inference, constant folding and DCE, as one StableHLO
function in MLIR text for a PJRT plugin (libtpu, XLA's CPU plugin). Weights are function arguments;
XLA does the fusion and layout work the CPU backend's passes do."""

"""The typed dataflow graph IR: values, nodes, op semantics and patches."""

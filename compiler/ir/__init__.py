"""The typed dataflow graph IR: values, nodes, op semantics and patches, plus what every backend
shares below it (window geometry, the weights-file table)."""

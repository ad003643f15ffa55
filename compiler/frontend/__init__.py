"""Model importers: map a serialized model onto the graph IR."""

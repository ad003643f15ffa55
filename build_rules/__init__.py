"""kiln build engine."""

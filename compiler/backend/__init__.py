"""Code generators for compiled graphs."""

"""Graph passes, applied in the explicit order of `PIPELINE`."""

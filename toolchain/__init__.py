"""Hermetic tools and pinned external artifacts."""

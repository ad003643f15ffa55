"""Packaging tools that build actions run (`python -m kiln.build_rules.packaging.<tool>`)."""

"""Alignment methods, one folder each (installed as `imgbench.methods`)."""

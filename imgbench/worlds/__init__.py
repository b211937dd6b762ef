"""Embedded worlds: small, fully specified domains where every method runs for real with exact ground truth."""

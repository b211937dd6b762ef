"""Scorers, one file each. Specs live in catalog/*.yaml; implementations import torch lazily."""

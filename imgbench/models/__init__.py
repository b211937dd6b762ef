"""Base generators. Specs live in catalog/*.yaml; implementations import torch lazily."""

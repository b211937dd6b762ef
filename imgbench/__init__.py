"""imgbench: an evaluation-first benchmark toolkit for text-to-image prompt alignment.

Importing this package is cheap on purpose (no torch): `imgbench ls` must stay fast.
"""

__version__ = "0.1.0"

#: Bumped whenever generation semantics change, so old run folders are never served as new ones.
CACHE_EPOCH = 1

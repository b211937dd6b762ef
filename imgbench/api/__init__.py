"""The contracts every plugin implements: records, Model, Method, Scorer, and the registry.

Specs are written by users (frozen, hashable), records are written by runs (serialisable), and
controllers are code (never serialised); this package keeps the three apart.
"""

from imgbench.api.method import Generation, Method
from imgbench.api.model import Model
from imgbench.api.records import GenerationRequest, Prompt, ScoreResult
from imgbench.api.scorer import Scorer

__all__ = ["Generation", "GenerationRequest", "Method", "Model", "Prompt", "ScoreResult", "Scorer"]

"""Prompt loaders for the shapes tasks: the prompts are generated from the grammar, not stored."""

from __future__ import annotations

from pathlib import Path

from imgbench.api.records import Prompt
from imgbench.api.specs import PromptSource
from imgbench.errors import UserError
from imgbench.worlds.shapes.grammar import SKILLS, SPLITS, splits


def split_prompts(split: str) -> list[Prompt]:
    """One prompt per caption of the split, skill by skill; ids are `<skill>-<index>`, tags the skill, plus
    `held-out` on the test captions whose composition no train or val caption has (results reported apart)."""
    if split not in SPLITS:
        raise UserError(f"unknown shapes split {split!r}; the splits are {', '.join(SPLITS)}.")
    prompts = []
    for skill in SKILLS:
        for index, (caption, spec, held_out) in enumerate(splits()[split][skill]):
            prompts.append(Prompt(id=f"{skill}-{index:04d}", text=caption,
                                  tags=(skill, "held-out") if held_out else (skill,),
                                  metadata={"spec": spec, "split": split, "held_out": held_out}))
    return prompts


def load_test(source: PromptSource, base: Path) -> list[Prompt]:
    """Loader of task `shapes`: the test split (held-out compositions included)."""
    return split_prompts("test")


def load_val(source: PromptSource, base: Path) -> list[Prompt]:
    """Loader of task `shapes-val`: for every choice made while tuning (checkpoint, CFG scale)."""
    return split_prompts("val")


def load_train(source: PromptSource, base: Path) -> list[Prompt]:
    """Loader of task `shapes-train`: the captions the model was trained on."""
    return split_prompts("train")

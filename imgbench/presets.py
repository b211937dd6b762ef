"""Named sampling protocols (`--preset NAME`): model arguments that reproduce a paper, per model.

The model cards' defaults follow the models' own documentation (SDXL CFG 5, FLUX without true CFG);
a paper may sample differently (the IMG paper: CFG 7.5, true CFG 3.5 on FLUX). A preset supplies those
values as model arguments under whatever `--model-arg` gives, so the resolved values — not the preset's
name — are what the run identity hashes: the same settings reached by hand are the same run. The name
is recorded in run.json and invocations.jsonl. Presets live in imgbench/models/presets/<name>.yaml.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from imgbench.errors import UserError

FOLDER = Path(__file__).resolve().parent / "models" / "presets"


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    reproduces: str
    """Which rows of which tables of the paper this preset's runs reproduce (docs say the same)."""
    models: dict[str, dict[str, Any]]


def names() -> list[str]:
    return sorted(p.stem for p in FOLDER.glob("*.yaml"))


def load(name: str) -> Preset:
    path = FOLDER / f"{name}.yaml"
    if not path.is_file():
        close = difflib.get_close_matches(name, names(), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UserError(f"unknown preset {name!r}.{hint} Presets: {', '.join(names())}.")
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return Preset(name=name, description=data["description"], reproduces=data["reproduces"],
                  models={k: dict(v) for k, v in data["models"].items()})


def apply(name: str | None, model: str, model_args: dict[str, Any]) -> dict[str, Any]:
    """The preset's arguments for `model`, overridden by the user's `--model-arg`s (no preset: unchanged)."""
    if not name:
        return dict(model_args)
    preset = load(name)
    if model not in preset.models:
        raise UserError(f"preset {name!r} has settings for {', '.join(sorted(preset.models))}, not for model "
                        f"{model!r}; drop --preset or choose one of those models.")
    return {**preset.models[model], **model_args}

"""The exact checker against a person's verdicts on generated images (tests/fixtures/shapes_labelled).

Sets of 204, each labelled and committed before the checker ran on it. Rule v5 was developed on the
first five and measured fresh on `heldout5`; `heldout6` and `heldout7` measured it on the shipped
(annealed step-7,000) UNet's drawings, and v6 (the soft corner-moment disc test) was then developed on all
of those, so their figures are optimistic for v6; `heldout8` measures v6 fresh, and `heldout9` measures it
fresh again with relations labelled by the world's definition (the amended guide). The fixture README
lists every disagreement's cause.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from imgbench.worlds.shapes.checker import check

FIXTURE = Path(__file__).parent / "fixtures" / "shapes_labelled"
#: Measured agreement per set (`python -m pytest tests/test_shapes_labelled.py -s` prints it and every
#: disagreement); the world's target is 0.95 (issue 8).
FLOORS = {"dev": 0.90, "heldout": 0.97, "heldout2": 0.94, "heldout3": 0.98, "heldout4": 0.98, "heldout5": 0.97,
          "heldout6": 0.96, "heldout7": 0.96, "heldout8": 0.94, "heldout9": 0.97}


def _rows(name: str) -> list[tuple[dict, dict]]:
    prompts = [json.loads(line) for line in (FIXTURE / name / "prompts.jsonl").read_text().splitlines()]
    labels = [json.loads(line) for line in (FIXTURE / name / "labels.jsonl").read_text().splitlines()]
    assert [p["index"] for p in prompts] == [label["index"] for label in labels] == list(range(len(prompts)))
    return list(zip(prompts, labels, strict=True))


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_fixture_is_complete(name):
    rows = _rows(name)
    assert len(rows) >= 200
    assert all((FIXTURE / name / "images" / f"{p['index']:03d}.png").is_file() for p, _ in rows)


@pytest.mark.parametrize("name", sorted(FLOORS))
def test_checker_agrees_with_hand_labels(name):
    disagreements = []
    rows = _rows(name)
    for prompt, label in rows:
        verdict = check(Image.open(FIXTURE / name / "images" / f"{prompt['index']:03d}.png"), prompt["spec"])
        if verdict["correct"] != label["matches_prompt"]:
            disagreements.append(f"{prompt['index']:03d} {prompt['caption']!r}: person {label['matches_prompt']} "
                                 f"({label['note'] or 'ok'}), checker {verdict['reason']}")
    agreement = 1 - len(disagreements) / len(rows)
    print(f"{name}: agreement {agreement:.3f} ({len(rows) - len(disagreements)}/{len(rows)})")
    print("\n".join(disagreements))
    assert agreement >= FLOORS[name], "\n".join(disagreements)

"""The exact checker against a person's verdicts on 204 generated images (tests/fixtures/shapes_labelled).

The labels were committed before the checker ran on these images. They served as the development
set for the checker's shape rule (the first rule agreed on 77%: soft-edged generated squares read as
circles), so the agreement here is optimistic; the README there lists every disagreement's cause.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

from imgbench.worlds.shapes.checker import check

FIXTURE = Path(__file__).parent / "fixtures" / "shapes_labelled"
#: Measured agreement is 172/204 = 0.843 (`python -m pytest tests/test_shapes_labelled.py -s` prints it);
#: the world's target is 0.95 (issue 8), not met yet: see the fixture's README.
FLOOR = 0.84


def _rows() -> list[tuple[dict, dict]]:
    prompts = [json.loads(line) for line in (FIXTURE / "prompts.jsonl").read_text().splitlines()]
    labels = [json.loads(line) for line in (FIXTURE / "labels.jsonl").read_text().splitlines()]
    assert [p["index"] for p in prompts] == [label["index"] for label in labels] == list(range(len(prompts)))
    return list(zip(prompts, labels, strict=True))


def test_fixture_is_complete():
    rows = _rows()
    assert len(rows) >= 200
    assert all((FIXTURE / "images" / f"{p['index']:03d}.png").is_file() for p, _ in rows)


def test_checker_agrees_with_hand_labels():
    disagreements = []
    for prompt, label in _rows():
        verdict = check(Image.open(FIXTURE / "images" / f"{prompt['index']:03d}.png"), prompt["spec"])
        if verdict["correct"] != label["matches_prompt"]:
            disagreements.append(f"{prompt['index']:03d} {prompt['caption']!r}: person {label['matches_prompt']} "
                                 f"({label['note'] or 'ok'}), checker {verdict['reason']}")
    agreement = 1 - len(disagreements) / len(_rows())
    print(f"agreement {agreement:.3f}\n" + "\n".join(disagreements))
    assert agreement >= FLOOR, "\n".join(disagreements)

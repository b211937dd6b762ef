"""GenEval rules with detections injected as data, case by case; then the scorer on tiny OWLv2 + CLIP."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from needs import shared_suites
from scorer_helpers import FIXTURES, check_contract, images, seeded, tiny_clip_parts

from imgbench.api.records import Prompt
from imgbench.errors import UserError
from imgbench.scorers.geneval import GenEval, GenEvalParts
from imgbench.scorers.geneval_rules import evaluate, relative_position, select


def boxes(*specs):
    """(x0, y0, x1, y1, score) tuples → the detections format, most confident first."""
    return [([x0, y0, x1, y1], s) for x0, y0, x1, y1, s in sorted(specs, key=lambda b: -b[4])]


def no_colour(name, found):
    raise AssertionError("colour must not be asked for")


def test_counting_needs_the_count_and_the_exclusion_caps_it():
    meta = {"tag": "counting", "include": [{"class": "clock", "count": 2}],
            "exclude": [{"class": "clock", "count": 3}]}
    two = {"clock": boxes((0, 0, 10, 10, .9), (20, 0, 30, 10, .8))}
    assert evaluate(meta, two, no_colour) == (True, "")
    one = {"clock": boxes((0, 0, 10, 10, .9))}
    assert evaluate(meta, one, no_colour) == (False, "expected clock>=2, found 1")
    three = {"clock": boxes((0, 0, 10, 10, .9), (20, 0, 30, 10, .8), (40, 0, 50, 10, .7))}
    assert evaluate(meta, three, no_colour) == (False, "expected clock<3, found 3")


def test_two_objects_are_an_and_of_includes():
    meta = {"tag": "two_object", "include": [{"class": "bench", "count": 1}, {"class": "sports ball", "count": 1}]}
    assert evaluate(meta, {"bench": boxes((0, 0, 5, 5, .5))}, no_colour) == (False,
                                                                             "expected sports ball>=1, found 0")
    both = {"bench": boxes((0, 0, 5, 5, .5)), "sports ball": boxes((9, 9, 12, 12, .4))}
    assert evaluate(meta, both, no_colour)[0]


def test_colour_uses_the_count_most_confident_boxes():
    meta = {"tag": "colors", "include": [{"class": "fire hydrant", "count": 1, "color": "blue"}]}
    det = {"fire hydrant": boxes((0, 0, 10, 10, .9), (50, 50, 60, 60, .4))}
    asked = []

    def colour(name, found):
        asked.append((name, [list(b) for b in found]))
        return ["red"]

    correct, reason = evaluate(meta, det, colour)
    assert not correct and reason == "expected blue fire hydrant>=1, found 0 blue; and 1 red"
    assert asked == [("fire hydrant", [[0, 0, 10, 10]])]  # only the most confident one is classified
    assert evaluate(meta, det, lambda name, found: ["blue"]) == (True, "")


def test_colour_attribution_checks_each_object_separately():
    meta = {"tag": "color_attr", "include": [{"class": "wine glass", "count": 1, "color": "purple"},
                                             {"class": "apple", "count": 1, "color": "black"}]}
    det = {"wine glass": boxes((0, 0, 10, 10, .9)), "apple": boxes((20, 20, 30, 30, .9))}
    swapped = {"wine glass": ["black"], "apple": ["purple"]}
    correct, reason = evaluate(meta, det, lambda name, found: swapped[name])
    assert not correct
    assert reason.splitlines() == ["expected purple wine glass>=1, found 0 purple; and 1 black",
                                   "expected black apple>=1, found 0 black; and 1 purple"]
    right = {"wine glass": ["purple"], "apple": ["black"]}
    assert evaluate(meta, det, lambda name, found: right[name]) == (True, "")


def test_position_relative_to_the_matched_target_group():
    meta = {"tag": "position", "include": [{"class": "teddy bear", "count": 1},
                                           {"class": "dog", "count": 1, "position": ["right of", 0]}]}
    bear = boxes((0, 0, 20, 20, .9))
    assert evaluate(meta, {"teddy bear": bear, "dog": boxes((60, 0, 80, 20, .9))}, no_colour) == (True, "")
    correct, reason = evaluate(meta, {"teddy bear": bear, "dog": boxes((0, 60, 20, 80, .9))}, no_colour)
    assert not correct and reason == "expected dog right of target, found below target"
    correct, reason = evaluate(meta, {"dog": boxes((60, 0, 80, 20, .9))}, no_colour)
    assert reason.splitlines() == ["expected teddy bear>=1, found 0", "no target for dog to be right of"]


def test_relative_position_shrinks_offsets_by_object_size():
    assert relative_position([50, 0, 60, 10], [0, 0, 10, 10]) == {"right of"}
    assert relative_position([0, 0, 10, 10], [0, 50, 10, 60]) == {"above"}
    assert relative_position([0, 0, 100, 100], [5, 5, 105, 105]) == set()  # overlapping: too close to call
    assert relative_position([60, 60, 70, 70], [0, 0, 10, 10]) == {"right of", "below"}  # 58/84.9 = 0.68 each
    assert relative_position([60, 20, 70, 30], [0, 0, 10, 10]) == {"right of"}  # (58, 18)/63.2: y part 0.28
    # The size margin decides: centres 12 apart, boxes 40 wide → offset shrunk by 0.1·80 = 8 → 4/12 < 0.5.
    assert relative_position([12, 0, 52, 10], [0, 0, 40, 10]) == set()
    assert relative_position([12, 0, 52, 10], [0, 0, 40, 10], position_threshold=0.0) == {"right of"}


def test_select_thresholds_sorts_caps_and_suppresses():
    raw = {"dog": [([0, 0, 10, 10], .5), ([1, 1, 11, 11], .6), ([50, 50, 60, 60], .25), ([80, 80, 90, 90], .1)],
           "cat": [([0, 0, 5, 5], .05)]}
    kept = select(raw, threshold=0.2, max_objects=16, nms_threshold=0.5)
    assert list(kept) == ["dog"]  # cat below threshold disappears, like GenEval's `del detected[classname]`
    assert [s for _, s in kept["dog"]] == [.6, .25]  # the 0.5 box overlaps the 0.6 box (IoU > 0.5)
    assert [s for _, s in select(raw, 0.2, 16, 1.0)["dog"]] == [.6, .5, .25]  # NMS off
    assert [s for _, s in select(raw, 0.2, 1, 1.0)["dog"]] == [.6]


# --- the scorer on tiny real models -------------------------------------------------------------------------

def tiny_geneval_parts(seed=0):
    from transformers import AutoProcessor, Owlv2Config, Owlv2ForObjectDetection

    processor = AutoProcessor.from_pretrained(FIXTURES / "owlv2_processor")
    tok = processor.tokenizer
    config = Owlv2Config(
        text_config={"vocab_size": len(tok), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "max_position_embeddings": 16, "eos_token_id": tok.eos_token_id,
                     "bos_token_id": tok.bos_token_id, "pad_token_id": tok.pad_token_id},
        vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2,
                       "image_size": 32, "patch_size": 8},
        projection_dim=32)
    detector = seeded(seed, lambda: Owlv2ForObjectDetection(config).eval())
    return GenEvalParts(detector=detector, processor=processor, colour=tiny_clip_parts(seed=seed + 1))


def geneval_prompts():
    """One prompt per GenEval tag from the suite copy (IMGBENCH_DATA_DIR, else <repo>/../shared/suites)."""
    import os
    from pathlib import Path

    data = Path(os.environ.get("IMGBENCH_DATA_DIR") or shared_suites())
    path = data / "geneval" / "evaluation_metadata.jsonl"  
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    by_tag = {}
    for row in rows:
        by_tag.setdefault(row["tag"], row)
    return [Prompt(id=str(i), text=r["prompt"], tags=(r["tag"],), metadata=r) for i, r in enumerate(by_tag.values())]


def test_geneval_scorer_contract_and_detections_from_raw_outputs():
    parts = tiny_geneval_parts()
    scorer = GenEval(backbone=lambda: parts, device="cpu", threshold=0.0, counting_threshold=0.0)
    records = geneval_prompts()
    assert {p.metadata["tag"] for p in records} == {"single_object", "two_object", "counting", "colors",
                                                    "position", "color_attr"}
    imgs = images(len(records), size=48, seed=2)  # non-square handling is exercised by the 48→32 resize
    results = check_contract(scorer, imgs, records, tol=0)
    assert all(r.value in (0.0, 1.0) and r.value == float(r.details["correct"]) for r in results)
    # Recompute the first image's boxes with plain torch from the detector's raw outputs.
    classes = [r["class"] for r in records[0].metadata["include"]]
    inputs = parts.processor(text=[[f"a photo of a {c}" for c in classes]], images=imgs[0], return_tensors="pt")
    with torch.no_grad():
        out = parts.detector(**inputs)
    scores = torch.sigmoid(out.logits[0].max(-1).values)
    cx, cy, w, h = out.pred_boxes[0].unbind(-1)
    xyxy = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], -1) * 48
    order = torch.argsort(scores, descending=True)
    first = results[0].details["detections"][classes[0]][0]
    np.testing.assert_allclose(first[:4], xyxy[order[0]].numpy(), atol=0.01)
    assert first[4] == pytest.approx(scores[order[0]].item(), abs=1e-4)


def test_geneval_direction_found_objects_pass_and_excluded_ones_fail():
    scorer = GenEval(backbone=tiny_geneval_parts(seed=3), device="cpu", threshold=0.0, counting_threshold=0.0,
                     nms_threshold=1.0)
    image = images(1, size=32, seed=4)
    present = Prompt(id="a", text="a photo of a dog", metadata={"tag": "single_object",
                                                                "include": [{"class": "dog", "count": 1}]})
    absent = Prompt(id="b", text="a photo of a dog", metadata={
        "tag": "counting", "include": [{"class": "dog", "count": 1}], "exclude": [{"class": "dog", "count": 2}]})
    assert scorer.score(image, [present])[0].value == 1.0  # threshold 0: every box counts as a dog
    result = scorer.score(image, [absent])[0]
    assert result.value == 0.0 and result.details["reason"].startswith("expected dog<2")


def test_geneval_refuses_prompts_without_metadata():
    scorer = GenEval(backbone=tiny_geneval_parts(), device="cpu")
    with pytest.raises(UserError, match="no GenEval metadata"):
        scorer.score(images(1), [Prompt(id="0", text="a cat")])

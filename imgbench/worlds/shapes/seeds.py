"""The shapes world's seed protocol (DESIGN §8, "held out means held out").

Every model seeds its generator with the seed alone, so one seed is one noise tensor — on this
world one layout — shared by every prompt. Training a method's part on a test seed is training on
the test layout. So the seeds are split by range, and every command that makes data for a method's
part draws from the parts' range, one seed per drawing (or per small block of drawings), and writes
the seeds it used into the part's manifest, where `imgbench.provenance` checks them.
"""

from __future__ import annotations

from collections.abc import Iterable

from imgbench.errors import UserError

SPLIT_VERSION = 2
"""Version of this protocol; 1 was the leaky one (test seeds 0–3 also drew training data)."""

TEST_SEEDS = range(0, 8)
"""The `shapes` task's seeds."""
VAL_SEEDS = range(100, 108)
"""The `shapes-val` task's seeds: every hyper-parameter choice is made here."""
PART_SEEDS = range(1_000, 100_000)
"""Data for method parts (MLLM finetuning drawings, preference pairs, editor and detector data, DPO)."""
REROLL_OFFSET = 1_000_000
"""Controls that need fresh noise for an item (a re-roll) use its seed plus this."""
EDIT_OFFSET = 2_000_000
"""The shapes editor starts an item's edit from the noise of its seed plus this: the item's own seed is the noise
that drew the image being edited, and an editor started from the text-to-image model redraws that image from it."""

LLAVA_DATA_FIRST_SEED = 1_000
"""`llava-data` draws seed 1,000 + i for its i-th drawing (6,088 drawings end at 7,087)."""
PAIRS_FIRST_SEED = 50_000
"""The preference-pair base runs (results/shapes/pairs.sh) take blocks of seeds from here."""
DETECTOR_RENDERS_FIRST_SEED = 20_000
"""`shapes-detector` renders train caption i (cycled) with seed 20,000 + i: renders carry no model noise, but their
seeds are recorded like the drawings' so that every part's data names its seeds."""


def check_part_seeds(seeds: Iterable[int], what: str) -> list[int]:
    """The seeds, if all lie in the parts' range; otherwise a UserError naming the offenders and the range."""
    seeds = list(seeds)
    outside = sorted({s for s in seeds if s not in PART_SEEDS})
    if outside:
        shown = ", ".join(map(str, outside[:5])) + (" …" if len(outside) > 5 else "")
        raise UserError(f"{what} would use seed(s) {shown}, outside the range for method parts "
                        f"({PART_SEEDS.start:,}–{PART_SEEDS.stop - 1:,}); test seeds are {TEST_SEEDS.start}–"
                        f"{TEST_SEEDS.stop - 1} and val seeds {VAL_SEEDS.start}–{VAL_SEEDS.stop - 1} "
                        f"(DESIGN §8). Choose seeds in the parts' range.")
    return seeds

"""Implicit reward accuracy of a DPO-trained UNet on held-out pairs, with 95% intervals.

Diffusion-DPO's implicit reward of an image is how much the trained UNet lowered its denoising error relative to
the reference (Wallace et al., 2024); a pair is ranked right when the winner's error fell more than the loser's.
One noise draw at one timestep is a noisy estimate of that, so each pair is scored at `timesteps` timesteps,
one drawn from each of that many equal strata of the schedule, with noise seeded by (seed, pair id, stratum):
a pair's draws never depend on the batch or on which other pairs are evaluated. The pair's margin is the mean
over its timesteps (a tie counts one half). Intervals: Wilson's for a share of independent pairs, and a
percentile bootstrap that resamples prompts with all their pairs (pairs of one prompt share images and layouts,
so the prompt-clustered interval is the one to quote; DESIGN §6).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from imgbench.dpo.backbones import Backbone
from imgbench.dpo.data import to_pixels
from imgbench.dpo.loss import implicit_accuracy
from imgbench.dpo.trainer import pair_terms
from imgbench.errors import UserError
from imgbench.pairs import Pair
from imgbench.provenance import seed_ranges
from imgbench.util.hashing import stable_int

Z95 = 1.959963984540054


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a binomial share (ties count one half, so successes may be fractional)."""
    share = successes / n
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def prompt_bootstrap_interval(prompts: list[str], correct: np.ndarray, samples: int, seed: int) -> tuple[float, float]:
    """Percentile interval of the pooled share, resampling prompts (each with all its pairs)."""
    from imgbench.stats import bootstrap_indices, percentile_interval

    names = sorted(set(prompts))
    index = {name: i for i, name in enumerate(names)}
    rows = np.array([index[p] for p in prompts])
    sums, counts = np.bincount(rows, weights=correct), np.bincount(rows).astype(float)
    draws = bootstrap_indices(len(names), samples, seed)
    return percentile_interval(sums[draws].sum(axis=1) / counts[draws].sum(axis=1))


def _generator(seed: int, pair: Pair, draw: int | str) -> Any:
    """A generator for one pair's draw (a timestep stratum, or its posterior samples), keyed by the pair's id."""
    import torch

    return torch.Generator().manual_seed(stable_int("dpo-eval", seed, pair.id, draw) % 2**63)


def pair_margins(backbone: Backbone, policy: Any, reference: Any, pairs: list[Pair], beta: float, timesteps: int,
                 seed: int) -> tuple[Any, Any]:
    """Per pair: the mean DPO logit over the timestep strata, and the mean loss."""
    import torch

    n = len(pairs)
    images = [pair.images() for pair in pairs]
    total = backbone.scheduler.config.num_train_timesteps
    with torch.no_grad():
        eps = None
        if backbone.stochastic_latents:
            draws = [_generator(seed, p, "posterior") for p in pairs]
            eps = torch.stack([torch.randn((2, *backbone.latent_shape), generator=g) for g in draws], dim=1)
        pixels = to_pixels([w for w, _ in images] + [lo for _, lo in images], backbone.resolution)
        x0 = backbone.latents(pixels, None if eps is None else eps.flatten(0, 1))
        logits, losses = torch.zeros(n), torch.zeros(n)
        prompts = [p.prompt for p in pairs]
        for stratum in range(timesteps):
            draws = [_generator(seed, p, stratum) for p in pairs]
            noise = torch.stack([torch.randn(backbone.latent_shape, generator=g) for g in draws])
            t = torch.tensor([int((stratum + float(torch.rand(1, generator=g))) * total / timesteps) for g in draws])
            terms = pair_terms(backbone, policy, reference, prompts, x0, noise, t, beta)
            logits += terms.logits.cpu()
            losses += -torch.nn.functional.logsigmoid(terms.logits).cpu()
    return logits / timesteps, losses / timesteps


def evaluate(backbone: Backbone, policy: Any, reference: Any, pairs: Iterable[Pair], beta: float, timesteps: int = 8,
             seed: int = 0, batch: int = 32, bootstrap_samples: int = 2000) -> dict[str, Any]:
    """Accuracy, mean margin and loss over the pairs, with Wilson and prompt-clustered 95% intervals."""
    ids, prompts, seeds, margins, losses = [], [], [], [], []
    chunk: list[Pair] = []

    def flush() -> None:
        margin, loss = pair_margins(backbone, policy, reference, chunk, beta, timesteps, seed)
        margins.extend(margin.tolist())
        losses.extend(loss.tolist())
        chunk.clear()

    for pair in pairs:
        ids.append(pair.id)
        prompts.append(pair.prompt)
        seeds.extend(s for s in (pair.info.get("winner_seed"), pair.info.get("loser_seed")) if isinstance(s, int))
        chunk.append(pair)
        if len(chunk) == batch:
            flush()
    if chunk:
        flush()
    if not ids:
        raise UserError("no pairs to evaluate: the pairs source is empty.")
    import torch

    correct = implicit_accuracy(torch.tensor(margins)).numpy().astype(float)
    n = len(correct)
    return {"n_pairs": n, "n_prompts": len(set(prompts)), "reward_accuracy": float(correct.mean()),
            "ci95_prompt_bootstrap": list(prompt_bootstrap_interval(prompts, correct, bootstrap_samples, seed)),
            "ci95_wilson": list(wilson_interval(float(correct.sum()), n)),
            "mean_margin": float(np.mean(margins)), "mean_loss": float(np.mean(losses)), "beta": beta,
            "timesteps_per_pair": timesteps, "seed": seed, "bootstrap_samples": bootstrap_samples,
            "pair_seeds": seed_ranges(seeds)}

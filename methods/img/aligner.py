"""The Implicit Aligner f_θ(h, c) of IMG (Guo et al., ICCV 2025, §3.3 and supplementary Fig. 9–10).

The structure is the one of the released checkpoints (`shi-labs/IMG` `aligner_sdxl.pth`,
`aligner_flux.pth`; the `Resampler_cross` class of the official code), so they load with strict
keys: `proj_in` projects the MLLM's last-layer states h to the token width D; `depth` blocks of
(Perceiver cross-attention whose queries are the image tokens and whose keys/values are
[norm(proj_in(h)); norm(image tokens)], then a feed-forward), each with a residual; then
`proj_out`, `norm_out` and a zero-initialised `zero_linear` added to the input tokens (global
residual). Because `zero_linear` starts at zero the aligner is the identity at initialisation,
which is the paper's "No guidance" ablation row (Table 5a).

One addition the released code lacks: an optional padding mask over h, so a training batch can
hold guidance sequences of different lengths. Without a mask (or with an all-true mask) the
computation is exactly the released one.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from imgbench.errors import UserError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AlignerConfig:
    """Sizes of an aligner. The released ones: E=5120 (LLaVA-1.5-13B), D=2048 (SDXL IP-Adapter Plus,
    16 tokens) or 4096 (FLUX XLabs adapter, 4 tokens), depth 4, 20 heads of 64, ff_mult 4."""

    guidance_dim: int = 5120
    token_dim: int = 2048
    depth: int = 4
    heads: int = 20
    head_dim: int = 64
    ff_mult: int = 4

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


class PerceiverCrossAttention(nn.Module):
    """Queries from the image tokens; keys/values from [normed guidance; normed image tokens]."""

    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, guidance: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        guidance = self.norm1(guidance)
        tokens = self.norm2(tokens)
        batch, n_tokens, _ = tokens.shape
        q = self._split(self.to_q(tokens))
        k, v = (self._split(t) for t in self.to_kv(torch.cat([guidance, tokens], dim=1)).chunk(2, dim=-1))
        # Two-sided 1/d^(1/4) scaling and a float32 softmax, as in the released code (stable in fp16).
        scale = 1.0 / math.sqrt(math.sqrt(self.head_dim))
        weight = (q * scale) @ (k * scale).transpose(-2, -1)
        if mask is not None:
            keep = torch.cat([mask.bool(), mask.new_ones(batch, n_tokens, dtype=torch.bool)], dim=1)
            weight = weight.masked_fill(~keep[:, None, None, :], float("-inf"))
        weight = torch.softmax(weight.float(), dim=-1).type(weight.dtype)
        out = (weight @ v).transpose(1, 2).reshape(batch, n_tokens, -1)
        return self.to_out(out)


def feed_forward(dim: int, mult: int) -> nn.Sequential:
    """LayerNorm, Linear D→mult·D, GELU, Linear back; no biases (keys `.0`, `.1`, `.3`)."""
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * mult, bias=False), nn.GELU(),
                         nn.Linear(dim * mult, dim, bias=False))


class ImplicitAligner(nn.Module):
    """f_θ(h, c): aligned image tokens from MLLM guidance states h [B, L, E] and tokens c [B, N, D]."""

    def __init__(self, config: AlignerConfig) -> None:
        super().__init__()
        self.config = config
        dim = config.token_dim
        self.proj_in = nn.Linear(config.guidance_dim, dim)
        self.layers = nn.ModuleList(
            nn.ModuleList([PerceiverCrossAttention(dim, config.heads, config.head_dim),
                           feed_forward(dim, config.ff_mult)]) for _ in range(config.depth)
        )
        self.proj_out = nn.Linear(dim, dim)
        self.norm_out = nn.LayerNorm(dim)
        self.zero_linear = nn.Linear(dim, dim)
        nn.init.zeros_(self.zero_linear.weight)
        nn.init.zeros_(self.zero_linear.bias)

    def forward(self, guidance: torch.Tensor, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """One pass. `mask` [B, L] marks the real (non-padding) guidance positions."""
        if guidance.shape[-1] != self.config.guidance_dim or tokens.shape[-1] != self.config.token_dim:
            raise ValueError(f"aligner expects guidance width {self.config.guidance_dim} and token width "
                             f"{self.config.token_dim}, got {guidance.shape[-1]} and {tokens.shape[-1]}")
        x = self.proj_in(guidance)
        z = tokens
        for attention, ff in self.layers:
            z = attention(x, z, mask) + z
            z = ff(z) + z
        return tokens + self.zero_linear(self.norm_out(self.proj_out(z)))

    def align(self, guidance: torch.Tensor, tokens: torch.Tensor, passes: int = 3,
              mask: torch.Tensor | None = None) -> torch.Tensor:
        """Apply the aligner `passes` times, feeding its output back with the same h (paper §4.1: 3)."""
        if passes < 1:
            raise ValueError(f"passes must be at least 1, got {passes}")
        for _ in range(passes):
            tokens = self(guidance, tokens, mask)
        return tokens


def strip_prefix(state: dict[str, torch.Tensor], prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Drop the DDP `module.` prefix the released files may carry."""
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix):]: v for k, v in state.items()}
    return dict(state)


def infer_config(state: dict[str, torch.Tensor], heads: int = 20) -> AlignerConfig:
    """Sizes from a state dict's shapes. Heads cannot be read from shapes (only heads·head_dim)."""
    try:
        token_dim, guidance_dim = state["proj_in.weight"].shape
        depth = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("layers."))
        inner = state["layers.0.0.to_q.weight"].shape[0]
        ff_inner = state["layers.0.1.1.weight"].shape[0]
    except (KeyError, ValueError) as exc:
        raise UserError(f"not an IMG aligner state dict (missing {exc}); expected the shi-labs/IMG layout "
                        f"(proj_in, layers.i.0/1, proj_out, norm_out, zero_linear).") from None
    if inner % heads:
        raise UserError(f"aligner inner width {inner} is not divisible by heads={heads}; pass the right heads.")
    return AlignerConfig(guidance_dim=int(guidance_dim), token_dim=int(token_dim), depth=depth, heads=heads,
                         head_dim=inner // heads, ff_mult=int(ff_inner) // int(token_dim))


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A released `.pth` (pickle, read with weights_only=True) or an imgbench `.safetensors` file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"aligner checkpoint {path} not found; download it with "
                        f"`huggingface-cli download shi-labs/IMG {path.name}` or train one with `imgbench train img`.")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is a bad file for the user
        raise UserError(f"cannot read aligner checkpoint {path} as a weights-only torch file: {exc}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise UserError(f"{path} holds a {type(state).__name__}, not a state dict of the aligner.")
    return state


def load_aligner(path: str | Path, config: AlignerConfig | None = None, heads: int = 20) -> ImplicitAligner:
    """Build an aligner and load weights strictly; a key or shape mismatch names what differs."""
    state = strip_prefix(read_state_dict(path))
    config = config or infer_config(state, heads)
    aligner = ImplicitAligner(config)
    expected = aligner.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
    if missing or unexpected or wrong:
        def show(keys: list[str]) -> str:
            return ", ".join(keys[:6]) + (f" … ({len(keys)} in all)" if len(keys) > 6 else "") or "none"
        shapes = "; ".join(f"{k}: file {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}" for k in wrong[:4])
        raise UserError(f"aligner checkpoint {path} does not match the aligner {config.to_dict()}: missing keys "
                        f"[{show(missing)}], unexpected keys [{show(unexpected)}], wrong shapes [{shapes or 'none'}].")
    aligner.load_state_dict({k: v.float() for k, v in state.items()}, strict=True)
    return aligner


def aligner_info(aligner: ImplicitAligner) -> dict[str, Any]:
    return {"config": aligner.config.to_dict(), "parameters": sum(p.numel() for p in aligner.parameters())}

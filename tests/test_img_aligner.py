"""Implicit Aligner: identity at init, released key layout, plain-tensor forward (checkpoint_formats.md)."""

from __future__ import annotations

import math

import pytest
import torch
from imgbench.methods.img.aligner import AlignerConfig, ImplicitAligner, infer_config, load_aligner

from imgbench.errors import UserError

E, D, DEPTH, H, HD, FF = 24, 16, 2, 4, 4, 4


def released_layout(generator: torch.Generator, prefix: str = "module.") -> dict[str, torch.Tensor]:
    """A state dict with the key names and shapes the checkpoint_formats.md table gives (tiny sizes, random)."""
    inner = H * HD

    def r(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=generator) * 0.3

    state = {"proj_in.weight": r(D, E), "proj_in.bias": r(D)}
    for i in range(DEPTH):
        state.update({
            f"layers.{i}.0.norm1.weight": 1 + r(D), f"layers.{i}.0.norm1.bias": r(D),
            f"layers.{i}.0.norm2.weight": 1 + r(D), f"layers.{i}.0.norm2.bias": r(D),
            f"layers.{i}.0.to_q.weight": r(inner, D), f"layers.{i}.0.to_kv.weight": r(2 * inner, D),
            f"layers.{i}.0.to_out.weight": r(D, inner),
            f"layers.{i}.1.0.weight": 1 + r(D), f"layers.{i}.1.0.bias": r(D),
            f"layers.{i}.1.1.weight": r(FF * D, D), f"layers.{i}.1.3.weight": r(D, FF * D),
        })
    state.update({"proj_out.weight": r(D, D), "proj_out.bias": r(D), "norm_out.weight": 1 + r(D),
                  "norm_out.bias": r(D), "zero_linear.weight": r(D, D), "zero_linear.bias": r(D)})
    return {prefix + k: v for k, v in state.items()}


def layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + 1e-5) * w + b


def plain_forward(s: dict[str, torch.Tensor], h: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """checkpoint_formats.md's forward written with matmuls and explicit softmax, per head."""
    x = h @ s["proj_in.weight"].T + s["proj_in.bias"]
    z = c
    for i in range(DEPTH):
        p = f"layers.{i}."
        xn = layer_norm(x, s[p + "0.norm1.weight"], s[p + "0.norm1.bias"])
        zn = layer_norm(z, s[p + "0.norm2.weight"], s[p + "0.norm2.bias"])
        q = zn @ s[p + "0.to_q.weight"].T
        kv = torch.cat([xn, zn], dim=1) @ s[p + "0.to_kv.weight"].T
        k, v = kv[..., :H * HD], kv[..., H * HD:]
        heads = []
        for j in range(H):
            sl = slice(j * HD, (j + 1) * HD)
            logits = q[..., sl] @ k[..., sl].transpose(1, 2) / math.sqrt(HD)
            weights = torch.exp(logits - logits.amax(-1, keepdim=True))
            weights = weights / weights.sum(-1, keepdim=True)
            heads.append(weights @ v[..., sl])
        z = torch.cat(heads, dim=-1) @ s[p + "0.to_out.weight"].T + z
        y = layer_norm(z, s[p + "1.0.weight"], s[p + "1.0.bias"]) @ s[p + "1.1.weight"].T
        y = 0.5 * y * (1 + torch.erf(y / math.sqrt(2)))  # exact GELU
        z = y @ s[p + "1.3.weight"].T + z
    out = z @ s["proj_out.weight"].T + s["proj_out.bias"]
    out = layer_norm(out, s["norm_out.weight"], s["norm_out.bias"])
    return c + out @ s["zero_linear.weight"].T + s["zero_linear.bias"]


def test_identity_at_initialisation() -> None:
    torch.manual_seed(0)
    aligner = ImplicitAligner(AlignerConfig(guidance_dim=E, token_dim=D, depth=DEPTH, heads=H, head_dim=HD))
    h, c = torch.randn(2, 7, E), torch.randn(2, 5, D)
    assert torch.equal(aligner(h, c), c)
    assert torch.equal(aligner.align(h, c, passes=3), c)


def test_released_layout_loads_strictly_and_matches_plain_computation(tmp_path) -> None:
    g = torch.Generator().manual_seed(1)
    state = released_layout(g)
    path = tmp_path / "aligner_tiny.pth"
    torch.save(state, path)
    aligner = load_aligner(path, heads=H)
    assert aligner.config == AlignerConfig(guidance_dim=E, token_dim=D, depth=DEPTH, heads=H, head_dim=HD, ff_mult=FF)
    h, c = torch.randn(3, 9, E, generator=g), torch.randn(3, 4, D, generator=g)
    plain = {k.removeprefix("module."): v for k, v in state.items()}
    with torch.no_grad():
        got = aligner(h, c)
        three = aligner.align(h, c, passes=3)
    expected = plain_forward(plain, h, c)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    expected3 = plain_forward(plain, h, plain_forward(plain, h, expected))
    assert torch.allclose(three, expected3, atol=1e-4)
    assert not torch.allclose(got, c)


def test_mask_all_true_equals_no_mask_and_padding_is_ignored() -> None:
    g = torch.Generator().manual_seed(2)
    aligner = ImplicitAligner(AlignerConfig(guidance_dim=E, token_dim=D, depth=DEPTH, heads=H, head_dim=HD))
    aligner.load_state_dict({k.removeprefix("module."): v for k, v in released_layout(g).items()})
    h, c = torch.randn(1, 6, E, generator=g), torch.randn(1, 4, D, generator=g)
    padded = torch.cat([h, torch.randn(1, 3, E, generator=g)], dim=1)
    mask = torch.tensor([[True] * 6 + [False] * 3])
    with torch.no_grad():
        assert torch.allclose(aligner(padded, c, mask), aligner(h, c), atol=1e-6)
        assert torch.equal(aligner(h, c, torch.ones(1, 6, dtype=torch.bool)), aligner(h, c))


def test_mismatch_names_keys_and_shapes(tmp_path) -> None:
    g = torch.Generator().manual_seed(3)
    state = released_layout(g, prefix="")
    del state["zero_linear.bias"]
    state["extra.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(UserError, match=r"missing keys \[zero_linear.bias\].*unexpected keys \[extra.weight\]"):
        load_aligner(tmp_path / "bad.pth", heads=H)
    good = released_layout(g, prefix="")
    torch.save(good, tmp_path / "good.pth")
    wrong = AlignerConfig(guidance_dim=E + 1, token_dim=D, depth=DEPTH, heads=H, head_dim=HD)
    with pytest.raises(UserError, match="wrong shapes.*proj_in.weight"):
        load_aligner(tmp_path / "good.pth", config=wrong)
    with pytest.raises(UserError, match="not found"):
        load_aligner(tmp_path / "absent.pth")


def test_released_sizes_are_inferred() -> None:
    """The SDXL aligner's shapes give E=5120, D=2048, depth 4, 20×64, ff 4 (no weights allocated)."""
    meta = {"proj_in.weight": torch.empty(2048, 5120, device="meta"),
            "layers.3.0.to_q.weight": torch.empty(1280, 2048, device="meta"),
            "layers.0.0.to_q.weight": torch.empty(1280, 2048, device="meta"),
            "layers.0.1.1.weight": torch.empty(8192, 2048, device="meta")}
    assert infer_config(meta) == AlignerConfig()

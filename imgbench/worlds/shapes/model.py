"""Model `shapes`: the world's text-to-image diffusion model behind the same contract as `sdxl`.

Classifier-free guidance (Ho & Salimans, 2022) over a caption-free branch trained by caption
dropout, and deterministic DDIM sampling (Song et al., 2021, η = 0) with trailing timestep
spacing. Each image's starting noise comes from its own `torch.Generator` seeded with the
request's seed, so an image never depends on batch size or position, and global RNG is untouched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imgbench.api.model import Model
from imgbench.api.records import GenerationRequest
from imgbench.errors import UserError
from imgbench.needs import Need, note
from imgbench.provenance import read_part
from imgbench.worlds.shapes import ip_adapter, nets
from imgbench.worlds.shapes.grammar import GRAMMAR_HELP, unknown_words
from imgbench.worlds.shapes.render import CANVAS

SHIPPED = Path(__file__).parent / "weights"
SHIPPED_DPO = Path(__file__).parent / "weights-dpo"
"""The `shapes-dpo` UNet (`imgbench train dpo --model shapes`, docs/dpo.md): unet/ and manifest.json."""
#: Networks always run on chunks of exactly this many rows (the last one zero-padded): CPU kernels pick
#: their blocking by batch size, so a free batch size changes the last float bits and, through CFG, pixels.
CHUNK = 16
PARTS = ("tokenizer", "text_encoder", "unet", "scheduler")
IP_PARTS = ("ip_adapter", "image_encoder")


def weights_digest(folder: Path, unet_folder: Path | None = None) -> str:
    """sha256 over the names and bytes of every weight, config and tokenizer file (the run-cache key); with
    `unet_folder` (a swapped-in UNet) its files replace the folder's unet/."""
    digest = hashlib.sha256()
    unet_folder = unet_folder or folder / "unet"
    files = [(p, p.relative_to(folder)) for part in PARTS + IP_PARTS if part != "unet"
             for p in (folder / part).rglob("*") if p.is_file()]
    files += [(p, "unet" / p.relative_to(unet_folder)) for p in unet_folder.rglob("*") if p.is_file()]
    for path, name in sorted(files, key=lambda item: str(item[1])):
        digest.update(str(name).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def fixed_chunks(fn: Any, *tensors: Any) -> Any:
    """fn over the rows of `tensors` in zero-padded chunks of CHUNK rows, so each row's result is the
    same whatever else is in the batch (checked by the tests)."""
    import torch

    outs = []
    for start in range(0, tensors[0].shape[0], CHUNK):
        parts = [t[start:start + CHUNK] for t in tensors]
        n = parts[0].shape[0]
        padded = [torch.cat([p, p.new_zeros((CHUNK - n, *p.shape[1:]))]) if n < CHUNK else p for p in parts]
        out = fn(*padded)
        outs.append(tuple(o[:n] for o in out) if isinstance(out, tuple) else out[:n])
    if isinstance(outs[0], tuple):
        return tuple(torch.cat(column) for column in zip(*outs, strict=True))
    return torch.cat(outs)


def check_vocabulary(texts: Sequence[str]) -> None:
    """Refuse, up front, prompts with words the world has never seen (e.g. `--task drawbench`)."""
    bad = {text: unknown_words(text) for text in texts}
    bad = {text: words for text, words in bad.items() if words}
    if bad:
        examples = "; ".join(f"{text!r}: {', '.join(words)}" for text, words in list(bad.items())[:3])
        more = f" (and {len(bad) - 3} more prompts)" if len(bad) > 3 else ""
        raise UserError(f"model 'shapes' cannot draw {len(bad)} prompt(s) with words outside its world — "
                        f"{examples}{more}. {GRAMMAR_HELP} Use --task shapes, or a model for real images.")


def _unet_call(unet: Any, x: Any, states: Any, pooled: Any, *tokens: Any, t: Any) -> Any:
    """One UNet evaluation on text states, pooled caption and (when an adapter is attached) IP tokens."""
    kwargs = ip_adapter.ip_kwargs(tokens[0]) if tokens else {}
    return unet(x, t, encoder_hidden_states=states, class_labels=pooled, **kwargs).sample


class ShapesModel(Model):
    """Tokenizer + CLIPTextModel + UNet2DConditionModel on the packed 16×16×12 'latent', plus an
    IP-Adapter (image encoder + projection + decoupled cross-attention) where its weights are present."""

    name = "shapes"
    supports_image_tokens = True
    preferred_batch_size = 64  # four CHUNKs: a batch of 1 would run 15 padding rows per image

    def __init__(self, model_path: str | None = None, guidance: float | None = None, steps: int = 25,
                 device: str = "cpu", dtype: str = "fp32", unet_path: str | None = None) -> None:
        """`unet_path`: a folder holding `unet/` (e.g. `imgbench train dpo --out DIR`) that replaces the
        weights' UNet; tokenizer, text encoder, sampler and IP-Adapter still come from `model_path`."""
        self.folder = Path(model_path) if model_path else SHIPPED
        missing = [part for part in PARTS if not (self.folder / part).is_dir()]
        if missing:
            raise UserError(f"the shapes model's weights are missing from {self.folder} ({', '.join(missing)}). "
                            f"Reinstall imgbench, or train and export them: `imgbench train shapes unet --workdir "
                            f"W` then `imgbench train shapes export --workdir W --step N --guidance G`.")
        self.unet_path = Path(unet_path) if unet_path else None
        self.unet_folder = self.unet_path / "unet" if self.unet_path else self.folder / "unet"
        if not (self.unet_folder / "config.json").is_file():
            raise UserError(f"--model-arg unet_path={unet_path}: expected a UNet in diffusers layout at "
                            f"{self.unet_folder} (config.json + weights), as `imgbench train dpo --out DIR` writes.")
        manifest_path = self.folder / "manifest.json"
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
        self.guidance = float(guidance if guidance is not None else manifest.get("sampling", {}).get("guidance", 1.0))
        self.steps = int(steps)
        if self.steps < 1 or self.guidance < 0:
            raise ValueError(f"need steps >= 1 and guidance >= 0, got steps={steps}, guidance={guidance}")
        if dtype != "fp32":
            raise ValueError(f"the shapes model runs in fp32 only (it is tiny), got dtype={dtype!r}")
        self.device, self.dtype = device, dtype
        # Per instance: a snapshot without an adapter (early training) cannot take image tokens.
        self.supports_image_tokens = all((self.folder / part).is_dir() for part in IP_PARTS)
        self._digest = weights_digest(self.folder, self.unet_folder)
        note(Need("local", "shapes model", str(self.folder), where=str(self.folder)))
        if self.unet_path:
            note(Need("local", "shapes UNet", str(self.unet_path), where=str(self.unet_folder)))
        self._parts: dict[str, Any] | None = None

    def parts(self) -> list[dict[str, Any]]:
        """A swapped-in UNet is a trained part whose manifest says which seeds its pairs were drawn with (DESIGN
        §8); the world's own networks are its foundation model and are not listed."""
        if self.unet_path is None:
            return []
        return [read_part(f"unet {self.unet_path}", self.unet_path / "manifest.json")]

    def load_networks(self) -> tuple[Any, Any, Any]:
        """Tokenizer, text encoder and UNet in fp32, without the IP-Adapter: what generation attaches the adapter
        to, and what the DPO trainer starts from."""
        import torch
        from diffusers import UNet2DConditionModel
        from transformers import CLIPTextModel

        text = CLIPTextModel.from_pretrained(self.folder / "text_encoder", torch_dtype=torch.float32)
        unet = UNet2DConditionModel.from_pretrained(self.unet_folder, torch_dtype=torch.float32)
        return nets.load_tokenizer(self.folder / "tokenizer"), text, unet

    def identity(self) -> dict[str, Any]:
        return {"version": 1, "weights_sha256": self._digest, "guidance": self.guidance, "steps": self.steps,
                "sampler": "ddim-trailing-eta0", "dtype": self.dtype, "device_type": self.device.split(":")[0]}

    def _load(self) -> dict[str, Any]:
        if self._parts is None:
            from transformers import CLIPModel

            tokenizer, text, unet = self.load_networks()
            self._parts = {"tokenizer": tokenizer, "text": text.eval().to(self.device),
                           "unet": unet.eval().to(self.device), "sampler": nets.load_sampler(self.folder)}
            if self.supports_image_tokens:
                from safetensors.torch import load_file

                flat = load_file(self.folder / "ip_adapter" / "ip_adapter.safetensors")
                ip_adapter.attach(unet, ip_adapter.unflatten(flat))
                self._parts["image_encoder"] = CLIPModel.from_pretrained(self.folder / "image_encoder").eval()
        return self._parts

    def encode_image(self, images: Sequence[Image.Image]) -> Any:
        """IP tokens (batch, 4, width): the CLIP image embedding through the adapter's projection."""
        import torch

        from imgbench.worlds.shapes.clip import image_inputs

        if not self.supports_image_tokens:
            raise UserError(f"the shapes weights in {self.folder} have no IP-Adapter (ip_adapter/ and "
                            f"image_encoder/); train one with `imgbench train shapes ip-adapter`.")
        parts = self._load()
        pixels = np.stack([np.asarray(im.convert("RGB").resize((CANVAS, CANVAS), Image.Resampling.BOX))
                           for im in images])
        with torch.no_grad():
            embeds = fixed_chunks(lambda x: parts["image_encoder"].get_image_features(pixel_values=x).pooler_output,
                                  image_inputs(pixels))
            return fixed_chunks(lambda e: ip_adapter.project(parts["unet"], e), embeds)

    def null_image_tokens(self, n: int) -> Any:
        """The projection of a zero image embedding: the tokens the unconditional branch gets."""
        import torch

        if not self.supports_image_tokens:
            raise UserError(f"the shapes weights in {self.folder} have no IP-Adapter (ip_adapter/, image_encoder/).")
        parts = self._load()
        with torch.no_grad():
            zero = ip_adapter.project(parts["unet"], torch.zeros(1, parts["image_encoder"].config.projection_dim))
        return zero.float().cpu().expand(n, -1, -1).clone()

    def encode_text(self, prompts: Sequence[str]) -> Any:
        """(batch, 16, width) token states of the text encoder: what the UNet cross-attends to."""

        check_vocabulary(prompts)
        return self.text_conditioning(prompts)[0]

    def text_conditioning(self, texts: Sequence[str]) -> tuple[Any, Any]:
        """(token states for cross-attention, pooled caption for `class_labels`) per text, batch-independent."""
        import torch

        parts = self._load()
        with torch.no_grad():
            ids = nets.tokenize(parts["tokenizer"], list(texts)).to(self.device)
            return fixed_chunks(lambda i: nets.encode(parts["text"], i), ids)

    def denoise(self, latents: Any, t: Any, states: Any, pooled: Any) -> Any:
        """The UNet's text-only prediction at timestep `t` (an attached IP-Adapter gets its zero tokens at scale
        0, as `generate` without image tokens): what SLD's latent operations (methods/sld) call per step."""
        import torch

        parts = self._load()
        tokens = self._ip_tokens(None, latents.shape[0], False)
        if tokens is None:
            with torch.no_grad():
                return _unet_call(parts["unet"], latents, states, pooled, t=t)
        ip_adapter.set_scale(parts["unet"], 0.0)
        with torch.no_grad(), ip_adapter.given_tokens(parts["unet"]):
            return _unet_call(parts["unet"], latents, states, pooled, tokens, t=t)

    def generate(self, requests: Sequence[GenerationRequest], image_tokens: Any | None = None,
                 ip_scale: float = 0.0) -> list[Image.Image]:
        import torch

        if image_tokens is not None and not self.supports_image_tokens:
            raise UserError(f"the shapes weights in {self.folder} have no IP-Adapter, so they cannot take "
                            f"image tokens.")
        check_vocabulary([r.prompt.text for r in requests])
        for r in requests:
            if (r.height, r.width) != (CANVAS, CANVAS):
                raise UserError(f"the shapes model draws {CANVAS}x{CANVAS} images, but {r.height}x{r.width} was "
                                f"asked for prompt {r.prompt.id!r}; set height/width to {CANVAS} in the task.")
        if not requests:
            return []
        parts = self._load()
        unet, sampler = parts["unet"], parts["sampler"]
        shape = (unet.config.in_channels, unet.config.sample_size, unet.config.sample_size)
        with torch.no_grad():
            latents = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(r.seed))
                                   for r in requests]).to(self.device)
            texts = [r.prompt.text for r in requests]
            guided = self.guidance != 1.0
            states, pooled = self.text_conditioning(texts + ([""] * len(texts) if guided else []))
            tokens = self._ip_tokens(image_tokens, len(requests), guided)
            extra = (tokens,) if tokens is not None else ()
            if tokens is not None:
                ip_adapter.set_scale(unet, ip_scale if image_tokens is not None else 0.0)
            sampler.set_timesteps(self.steps)
            for t in sampler.timesteps:
                model_in = torch.cat([latents, latents]) if guided else latents
                with ip_adapter.given_tokens(unet) if tokens is not None else nullcontext():
                    out = fixed_chunks(lambda *rows, t=t: _unet_call(unet, *rows, t=t), model_in, states, pooled,
                                       *extra)
                if guided:
                    cond, uncond = out.chunk(2)
                    out = uncond + self.guidance * (cond - uncond)
                latents = sampler.step(out, t, latents).prev_sample
        return nets.to_images(latents)

    def _ip_tokens(self, image_tokens: Any | None, n: int, guided: bool) -> Any | None:
        """Tokens per UNet row: the given ones (zero-embedding tokens for the unconditional half, as
        diffusers does with negative image embeds), or zero tokens at scale 0 when an adapter is attached."""
        import torch

        if not self.supports_image_tokens:
            return None
        zero = self.null_image_tokens(1).to(self.device)
        if image_tokens is None:
            tokens = zero.expand(n, -1, -1)
        else:
            tokens = torch.as_tensor(np.asarray([np.asarray(t, dtype=np.float32) for t in image_tokens]),
                                     device=zero.device)
            if tokens.shape != (n, *zero.shape[1:]):
                raise UserError(f"image_tokens must have shape ({n}, {zero.shape[1]}, {zero.shape[2]}), "
                                f"got {tuple(tokens.shape)}.")
        return torch.cat([tokens, zero.expand(n, -1, -1)]) if guided else tokens


class ShapesDPOModel(ShapesModel):
    """Model `shapes-dpo`: the shapes model with the UNet Diffusion-DPO finetuned on the IMG aligner's pairs
    (Wallace et al., CVPR 2024; docs/dpo.md), and the world's text encoder and IP-Adapter unchanged, as the IMG
    paper reuses SDXL's aligner and IP-Adapter on SDXL-DPO."""

    name = "shapes-dpo"

    def __init__(self, unet_path: str | None = None, **kwargs: Any) -> None:
        folder = Path(unet_path) if unet_path else SHIPPED_DPO
        if not (folder / "unet" / "config.json").is_file():
            raise UserError(f"the shapes-dpo UNet is not in {folder} (no unet/config.json): it is trained on the "
                            f"pairs the IMG aligner learns from, with `imgbench train dpo --model shapes --pairs "
                            f"results/runs/img-shapes/pairs.jsonl --workdir /work/shapes-train/dpo --out "
                            f"{SHIPPED_DPO}` (docs/dpo.md), or point at a trained one with --model-arg "
                            f"unet_path=DIR.")
        super().__init__(unet_path=str(folder), **kwargs)

"""`shapes-ip2p`: the shapes world's Instruct-Pix2Pix editor (Brooks et al., CVPR 2023, §3.2).

Built the way Instruct-Pix2Pix is built from Stable Diffusion: the shapes UNet gets 12 more input
channels for the source image (its packed pixels: this world has no VAE), zero-initialised so training
starts from the text-to-image model; the tokenizer gets the instruction words the captions never use
(add, remove, make, put, nothing, ...), their embeddings initialised near the mean of the others; and
sampling uses two-way classifier-free guidance,

    v = v(∅, ∅) + s_I · (v(I, ∅) − v(∅, ∅)) + s_T · (v(I, T) − v(I, ∅)),

where the empty caption is the text-free branch and an all-zero source the image-free one, both
trained by conditioning dropout. Each image's starting noise comes from its own generator seeded by
the item's seed plus `seeds.EDIT_OFFSET` (the item's own seed drew the image being edited: from that
noise the editor, started from the text-to-image model, tends to redraw it; seen on val drawings), and
networks run on fixed-size chunks, so an edit never depends on the batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from imgbench.errors import UserError
from imgbench.worlds.shapes import nets
from imgbench.worlds.shapes.render import CANVAS
from imgbench.worlds.shapes.seeds import EDIT_OFFSET

SHIPPED = Path(__file__).parent / "weights" / "ip2p"
PARTS = ("tokenizer", "text_encoder", "unet", "scheduler")
SOURCE_CHANNELS = 3 * nets.PACK * nets.PACK


def extended_tokenizer(base: Any, words: Sequence[str]) -> Any:
    """The caption tokenizer with `words` appended after its vocabulary, so every caption keeps its ids."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from tokenizers.processors import TemplateProcessing
    from transformers import PreTrainedTokenizerFast

    vocab = dict(sorted(base.get_vocab().items(), key=lambda item: item[1]))
    for word in words:
        vocab.setdefault(word, len(vocab))
    backend = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = WhitespaceSplit()
    backend.post_processor = TemplateProcessing(single="[BOS] $A [EOS]", special_tokens=[
        ("[BOS]", nets.BOS_ID), ("[EOS]", nets.EOS_ID)])
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="[BOS]", eos_token="[EOS]", pad_token="[PAD]",
                                   unk_token="[UNK]", model_max_length=nets.MAX_LENGTH)


def extend_text_encoder(text: Any, size: int, seed: int) -> None:
    """New token rows = mean of the old rows plus seeded noise at a tenth of their spread (the library's
    mean-resizing draws from the global RNG, which would make the first steps irreproducible)."""
    import torch

    old = text.get_input_embeddings().weight.detach().clone()
    text.resize_token_embeddings(size, mean_resizing=False)
    gen = torch.Generator().manual_seed(seed)
    fresh = old.mean(0) + 0.1 * old.std(0) * torch.randn((size - old.shape[0], old.shape[1]), generator=gen)
    with torch.no_grad():
        text.get_input_embeddings().weight[old.shape[0]:] = fresh


def add_source_channels(unet: Any) -> None:
    """conv_in takes the noisy target and the packed source: the new input channels start at zero."""
    import torch

    old = unet.conv_in
    new = torch.nn.Conv2d(old.in_channels + SOURCE_CHANNELS, old.out_channels, old.kernel_size, old.stride,
                          old.padding)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, :old.in_channels] = old.weight
        new.bias.copy_(old.bias)
    unet.conv_in = new
    unet.register_to_config(in_channels=old.in_channels + SOURCE_CHANNELS)


def folder_digest(folder: Path) -> str:
    """sha256 over the names and bytes of every file of the editor's parts (its identity in a run)."""
    digest = hashlib.sha256()
    for path in sorted(p for part in PARTS for p in (folder / part).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def two_way_guidance(cond: Any, image_only: Any, uncond: Any, text_scale: float, image_scale: float) -> Any:
    """Instruct-Pix2Pix's guidance (Brooks et al., eq. 3) on the model's v-predictions."""
    return uncond + image_scale * (image_only - uncond) + text_scale * (cond - image_only)


class ShapesEditor:
    """The trained editor at fixed settings; `edit` maps (images, instructions, seeds) to edited images."""

    def __init__(self, folder: str | Path | None = None, steps: int = 25, guidance_scale: float = 3.0,
                 image_guidance_scale: float = 1.5, device: str | None = None) -> None:
        self.folder = Path(folder) if folder else SHIPPED
        missing = [part for part in PARTS if not (self.folder / part).is_dir()]
        if missing:
            raise UserError(f"the shapes-ip2p editor is missing from {self.folder} ({', '.join(missing)}). Train and "
                            f"export it with `imgbench train shapes ip2p --workdir W --generated "
                            f"/work/shapes-train/llava-data.npz --export` (docs/instruct-pix2pix.md), or pass "
                            f"--method-arg editor_path=DIR.")
        self.settings = {"steps": int(steps), "guidance_scale": float(guidance_scale),
                         "image_guidance_scale": float(image_guidance_scale), "sampler": "ddim-trailing-eta0"}
        self.device = device or "cpu"
        self._digest = folder_digest(self.folder)
        self._parts: dict[str, Any] | None = None

    def identity(self) -> dict[str, Any]:
        return {"weights": {"name": "shapes-ip2p", "sha256": self._digest}, "pipeline": "shapes", **self.settings}

    def parts(self) -> list[dict[str, Any]]:
        """The editor is a trained part: its manifest names the seeds its drawings used (DESIGN §8)."""
        from imgbench.provenance import read_part

        return [read_part("editor shapes-ip2p", self.folder / "manifest.json")]

    def _load(self) -> dict[str, Any]:
        if self._parts is None:
            import torch
            from diffusers import UNet2DConditionModel
            from transformers import CLIPTextModel

            text = CLIPTextModel.from_pretrained(self.folder / "text_encoder", torch_dtype=torch.float32)
            unet = UNet2DConditionModel.from_pretrained(self.folder / "unet", torch_dtype=torch.float32)
            self._parts = {"tokenizer": nets.load_tokenizer(self.folder / "tokenizer"),
                           "text": text.eval().to(self.device), "unet": unet.eval().to(self.device),
                           "sampler": nets.load_sampler(self.folder)}
        return self._parts

    def edit(self, images: Sequence[Image.Image], instructions: Sequence[str], seeds: Sequence[int]) -> list[Any]:
        """One edited 32×32 image per input (other sizes are refused: the world draws at 32×32 only)."""
        import torch

        from imgbench.worlds.shapes.model import fixed_chunks
        from imgbench.worlds.shapes.train_unet import to_tensor

        if not images:
            return []
        for image in images:
            if image.size != (CANVAS, CANVAS):
                raise UserError(f"shapes-ip2p edits {CANVAS}x{CANVAS} images, got {image.size[0]}x{image.size[1]}.")
        parts = self._load()
        unet, sampler, n = parts["unet"], parts["sampler"], len(images)
        scale_t, scale_i = self.settings["guidance_scale"], self.settings["image_guidance_scale"]
        with torch.no_grad():
            source = nets.pack(to_tensor(np.stack([np.asarray(im.convert("RGB")) for im in images]))).to(self.device)
            shape = (SOURCE_CHANNELS, source.shape[2], source.shape[3])
            latents = torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s) + EDIT_OFFSET))
                                   for s in seeds]).to(self.device)
            ids = nets.tokenize(parts["tokenizer"], list(instructions) + [""] * (2 * n)).to(self.device)
            states, pooled = fixed_chunks(lambda i: nets.encode(parts["text"], i), ids)
            sources = torch.cat([source, source, torch.zeros_like(source)])
            sampler.set_timesteps(self.settings["steps"])
            for t in sampler.timesteps:
                model_in = torch.cat([torch.cat([latents] * 3), sources], dim=1)
                out = fixed_chunks(lambda x, s, p, t=t: unet(x, t, encoder_hidden_states=s, class_labels=p).sample,
                                   model_in, states, pooled)
                latents = sampler.step(two_way_guidance(*out.chunk(3), scale_t, scale_i), t, latents).prev_sample
            pixels = nets.unpack(latents).clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
        return [Image.fromarray(np.ascontiguousarray(p.permute(1, 2, 0).cpu().numpy())) for p in pixels]

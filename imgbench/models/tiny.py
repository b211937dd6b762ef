"""Tiny, randomly initialised SD 1.5 / SDXL / FLUX pipelines (+ IP-Adapters) built from the real
diffusers and transformers classes, for tests and GPU smoke runs anywhere (no hub, no files).

Everything here is deterministic in `seed` and leaves the global RNG untouched. The weights are
noise, so images are noise too, but every code path (tokenizers, text encoders, UNet or
transformer, VAE, IP-Adapter loading and token injection) is the one real models take.

Typical use in a test (other areas: the IMG method, the shapes world):

    from imgbench.models.tiny import tiny_model
    model = tiny_model("sdxl", tmp_path)                 # SDXLModel on CPU fp32, 2 steps, IP-Adapter Plus
    tokens = model.encode_image([image])                  # (1, 16, 64) projected IP tokens
    images = model.generate(requests, image_tokens=tokens, ip_scale=0.5)

Lower-level pieces: `tiny_sd15_pipeline`, `tiny_sdxl_pipeline`, `tiny_flux_pipeline`, `tiny_ip2p_pipeline`
(Instruct-Pix2Pix editors for SD 1.5 and SDXL),
`tiny_owlv2` and `tiny_sam` (the detector and segmenter SLD uses, saved with their processors),
`tiny_unet_like` (a differently initialised UNet for DPO-style swaps), `write_sdxl_ip_adapter`
and `write_flux_ip_adapter` (adapter folders laid out like h94/IP-Adapter and
XLabs-AI/flux-ip-adapter), `save_pipeline` and `save_as_hub_cache` (a folder laid out like the
Hugging Face cache, for offline loading by hub id).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: Sizes shared by the tiny families: text width per encoder, IP tokens, CLIP vision tower.
TEXT_DIM = 32
IP_TOKENS = 16
VISION = {"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 2,
          "image_size": 32, "patch_size": 8, "projection_dim": 32}
KINDS = ("sd15", "sdxl", "flux-dev", "flux-schnell")


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed weight initialisation without disturbing the caller's global RNG."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _bytes_to_unicode() -> dict[int, str]:
    """CLIP's reversible byte → printable-character table (the base alphabet of its BPE)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def tiny_clip_tokenizer(max_length: int = 77) -> Any:
    """A byte-level CLIP BPE tokenizer: every byte, every byte + '</w>', a few merges, BOS/EOS."""
    from transformers import CLIPTokenizer

    chars = list(_bytes_to_unicode().values())
    vocab = {token: i for i, token in enumerate([*chars, *(c + "</w>" for c in chars)])}
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("o", "n</w>"), ("r", "e"), ("e", "d</w>")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=max_length)


def tiny_t5_tokenizer() -> Any:
    """A unigram T5 tokenizer over lowercase letters, digits and a little punctuation."""
    from transformers import T5TokenizerFast

    letters = "abcdefghijklmnopqrstuvwxyz"
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0),
              *((c, -3.0) for c in letters + "0123456789.,"), *(("▁" + c, -2.5) for c in letters)]
    return T5TokenizerFast(vocab=pieces, extra_ids=0)


def _clip_text(tokenizer: Any, with_projection: bool) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    config = CLIPTextConfig(vocab_size=len(tokenizer), hidden_size=TEXT_DIM, intermediate_size=37, num_hidden_layers=2,
                            num_attention_heads=4, projection_dim=TEXT_DIM, max_position_embeddings=77,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                            pad_token_id=tokenizer.pad_token_id, hidden_act="gelu")
    return (CLIPTextModelWithProjection if with_projection else CLIPTextModel)(config).eval()


def _sd_vae() -> Any:
    from diffusers import AutoencoderKL

    return AutoencoderKL(block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4,
                         down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                         sample_size=32)


def _sd_unet(sdxl: bool, in_channels: int = 4) -> Any:
    from diffusers import UNet2DConditionModel

    extra = {"addition_embed_type": "text_time", "addition_time_embed_dim": 8, "use_linear_projection": True,
             "projection_class_embeddings_input_dim": 8 * 6 + TEXT_DIM} if sdxl else {}
    return UNet2DConditionModel(block_out_channels=(32, 64), layers_per_block=1, sample_size=16,
                                in_channels=in_channels, out_channels=4,
                                down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                                up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"), attention_head_dim=8,
                                cross_attention_dim=2 * TEXT_DIM if sdxl else TEXT_DIM, **extra)


def tiny_sd15_pipeline(seed: int = 0) -> Any:
    """StableDiffusionPipeline (PNDM, as SD 1.5 ships), no safety checker."""
    from diffusers import PNDMScheduler, StableDiffusionPipeline

    with seeded(seed):
        tokenizer = tiny_clip_tokenizer()
        scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                  skip_prk_steps=True, set_alpha_to_one=False, steps_offset=1)
        return StableDiffusionPipeline(vae=_sd_vae(), text_encoder=_clip_text(tokenizer, False), tokenizer=tokenizer,
                                       unet=_sd_unet(sdxl=False), scheduler=scheduler, safety_checker=None,
                                       feature_extractor=None, image_encoder=None, requires_safety_checker=False)


def tiny_sdxl_pipeline(seed: int = 0) -> Any:
    """StableDiffusionXLPipeline (Euler, as SDXL base ships), two text encoders of width 32."""
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLPipeline

    with seeded(seed):
        tokenizer = tiny_clip_tokenizer()
        scheduler = EulerDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                           steps_offset=1, timestep_spacing="leading")
        return StableDiffusionXLPipeline(vae=_sd_vae(), text_encoder=_clip_text(tokenizer, False),
                                         text_encoder_2=_clip_text(tokenizer, True), tokenizer=tokenizer,
                                         tokenizer_2=tiny_clip_tokenizer(), unet=_sd_unet(sdxl=True),
                                         scheduler=scheduler, image_encoder=None, feature_extractor=None)


def tiny_ip2p_pipeline(kind: str, seed: int = 0) -> Any:
    """An Instruct-Pix2Pix pipeline ('sd15' or 'sdxl'): UNet with 8 input channels (noise + source latents),
    Euler-ancestral as the SD 1.5 model card, no safety checker, no watermark."""
    from diffusers import (
        EulerAncestralDiscreteScheduler,
        StableDiffusionInstructPix2PixPipeline,
        StableDiffusionXLInstructPix2PixPipeline,
    )

    with seeded(seed):
        tokenizer = tiny_clip_tokenizer()
        scheduler = EulerAncestralDiscreteScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                                                    steps_offset=1, timestep_spacing="leading")
        if kind == "sd15":
            return StableDiffusionInstructPix2PixPipeline(
                vae=_sd_vae(), text_encoder=_clip_text(tokenizer, False), tokenizer=tokenizer,
                unet=_sd_unet(sdxl=False, in_channels=8), scheduler=scheduler, safety_checker=None,
                feature_extractor=None, requires_safety_checker=False)
        return StableDiffusionXLInstructPix2PixPipeline(
            vae=_sd_vae(), text_encoder=_clip_text(tokenizer, False), text_encoder_2=_clip_text(tokenizer, True),
            tokenizer=tokenizer, tokenizer_2=tiny_clip_tokenizer(), unet=_sd_unet(sdxl=True, in_channels=8),
            scheduler=scheduler, add_watermarker=False)


def tiny_flux_pipeline(seed: int = 0, guidance_embeds: bool = True) -> Any:
    """FluxPipeline with CLIP + T5 text encoders; `guidance_embeds` True is [dev]-like, False [schnell]-like."""
    from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
    from transformers import T5Config, T5EncoderModel

    with seeded(seed):
        tokenizer, tokenizer_2 = tiny_clip_tokenizer(), tiny_t5_tokenizer()
        t5 = T5EncoderModel(T5Config(vocab_size=len(tokenizer_2), d_model=TEXT_DIM, d_kv=8, d_ff=37, num_layers=2,
                                     num_heads=4, pad_token_id=0, eos_token_id=1)).eval()
        vae = AutoencoderKL(block_out_channels=(8, 16), in_channels=3, out_channels=3, latent_channels=1,
                            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
                            layers_per_block=1, norm_num_groups=8, sample_size=32, use_quant_conv=False,
                            use_post_quant_conv=False, shift_factor=0.0609, scaling_factor=1.5035)
        transformer = FluxTransformer2DModel(patch_size=1, in_channels=4, num_layers=1, num_single_layers=1,
                                             attention_head_dim=16, num_attention_heads=2,
                                             joint_attention_dim=TEXT_DIM, pooled_projection_dim=TEXT_DIM,
                                             axes_dims_rope=[4, 4, 8], guidance_embeds=guidance_embeds)
        return FluxPipeline(scheduler=FlowMatchEulerDiscreteScheduler(), vae=vae,
                            text_encoder=_clip_text(tokenizer, False), tokenizer=tokenizer, text_encoder_2=t5,
                            tokenizer_2=tokenizer_2, transformer=transformer)


def clip_tower_configs(tokenizer: Any, image_size: int, patch_size: int, intermediate_size: int = 37,
                       layers: int = 1, heads: int = 4) -> tuple[dict[str, Any], dict[str, Any]]:
    """Text and vision config mappings, width 32, for CLIP-like twin towers (CLIP, OWLv2) over `tokenizer`."""
    text = {"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": intermediate_size,
            "num_hidden_layers": layers, "num_attention_heads": heads, "max_position_embeddings": 77,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id}
    vision = {"hidden_size": 32, "intermediate_size": intermediate_size, "num_hidden_layers": layers,
              "num_attention_heads": heads, "image_size": image_size, "patch_size": patch_size}
    return text, vision


def tiny_owlv2(folder: str | Path, seed: int = 0, image_size: int = 64) -> Path:
    """An `Owlv2ForObjectDetection` + `Owlv2Processor` (byte-level CLIP tokenizer) saved like the hub repo."""
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2ImageProcessor, Owlv2Processor

    tokenizer = tiny_clip_tokenizer()
    text, vision = clip_tower_configs(tokenizer, image_size, patch_size=16)
    with seeded(seed):
        model = Owlv2ForObjectDetection(Owlv2Config(text_config=text, vision_config=vision, projection_dim=32)).eval()
    model.save_pretrained(folder)
    processor = Owlv2Processor(image_processor=Owlv2ImageProcessor(size={"height": image_size, "width": image_size}),
                               tokenizer=tokenizer)
    processor.save_pretrained(folder)
    return Path(folder)


def tiny_sam(folder: str | Path, seed: int = 0, image_size: int = 64) -> Path:
    """A `SamModel` + `SamProcessor` (box prompts) saved like the hub repo."""
    from transformers import SamConfig, SamImageProcessor, SamModel, SamProcessor

    config = SamConfig(
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1, "num_attention_heads": 4,
                       "image_size": image_size, "patch_size": 16, "output_channels": 16, "global_attn_indexes": [0],
                       "mlp_dim": 37, "window_size": 0, "num_pos_feats": 8},
        prompt_encoder_config={"hidden_size": 16, "image_size": image_size, "patch_size": 16,
                               "mask_input_channels": 4},
        mask_decoder_config={"hidden_size": 16, "mlp_dim": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                             "iou_head_hidden_dim": 16})
    with seeded(seed):
        model = SamModel(config).eval()
    model.save_pretrained(folder)
    SamProcessor(image_processor=SamImageProcessor(size={"longest_edge": image_size},
                                                   pad_size={"height": image_size, "width": image_size})
                 ).save_pretrained(folder)
    return Path(folder)


def tiny_unet_like(pipe: Any, seed: int) -> Any:
    """A UNet with the pipeline's config but other weights: a stand-in for a DPO/SPO/MaPO/KTO release."""
    from diffusers import UNet2DConditionModel

    with seeded(seed):
        return UNet2DConditionModel.from_config(pipe.unet.config)


def _tiny_vision_encoder(seed: int) -> Any:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    with seeded(seed):
        return CLIPVisionModelWithProjection(CLIPVisionConfig(**VISION)).eval()


def _random(shape: tuple[int, ...], scale: float = 0.2) -> Any:
    import torch

    return torch.randn(*shape) * scale


def _linear(tensors: dict[str, Any], name: str, out: int, inp: int, bias: bool = True) -> None:
    tensors[f"{name}.weight"] = _random((out, inp))
    if bias:
        tensors[f"{name}.bias"] = _random((out,))


def _norm(tensors: dict[str, Any], name: str, dim: int) -> None:
    tensors[f"{name}.weight"], tensors[f"{name}.bias"] = 1 + _random((dim,)), _random((dim,))


def write_sdxl_ip_adapter(folder: str | Path, unet: Any, seed: int = 0, subfolder: str = "sdxl_models",
                          weight_name: str = "ip-adapter-plus_sdxl_vit-h.safetensors",
                          encoder_folder: str = "models/image_encoder") -> Path:
    """An IP-Adapter Plus for `unet`, written in the original h94/IP-Adapter key layout:
    `image_proj.*` (the Resampler: latents, proj_in, 4 blocks, proj_out, norm_out) and
    `ip_adapter.<n>.to_{k,v}_ip.weight` for every cross-attention layer, plus a CLIP vision tower."""
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    hidden, embed, out = 64, VISION["hidden_size"], unet.config.cross_attention_dim
    tensors: dict[str, torch.Tensor] = {}
    with seeded(seed):
        tensors["image_proj.latents"] = _random((1, IP_TOKENS, hidden), hidden**-0.5)
        _linear(tensors, "image_proj.proj_in", hidden, embed)
        _linear(tensors, "image_proj.proj_out", out, hidden)
        _norm(tensors, "image_proj.norm_out", out)
        for i in range(4):  # diffusers' converter expects the released depth of 4 blocks, 64-wide heads
            block = f"image_proj.layers.{i}"
            for norm in ("0.norm1", "0.norm2", "1.0"):
                _norm(tensors, f"{block}.{norm}", hidden)
            _linear(tensors, f"{block}.0.to_q", 64, hidden, bias=False)
            _linear(tensors, f"{block}.0.to_kv", 128, hidden, bias=False)
            _linear(tensors, f"{block}.0.to_out", hidden, 64, bias=False)
            _linear(tensors, f"{block}.1.1", 4 * hidden, hidden, bias=False)
            _linear(tensors, f"{block}.1.3", hidden, 4 * hidden, bias=False)
        key = 1
        for name in unet.attn_processors:
            if name.endswith("attn2.processor"):
                width = unet.get_submodule(name[: -len(".processor")]).to_out[0].out_features
                _linear(tensors, f"ip_adapter.{key}.to_k_ip", width, out, bias=False)
                _linear(tensors, f"ip_adapter.{key}.to_v_ip", width, out, bias=False)
                key += 2
        (folder / subfolder).mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(folder / subfolder / weight_name))
    _tiny_vision_encoder(seed + 1).save_pretrained(folder / encoder_folder)
    return folder


def write_flux_ip_adapter(folder: str | Path, transformer: Any, seed: int = 0,
                          weight_name: str = "ip_adapter.safetensors") -> tuple[Path, Path]:
    """An XLabs-style FLUX adapter (`ip_adapter_proj_model.*`, `double_blocks.<i>.processor.*`) in
    `folder/adapter` and its CLIP vision tower in `folder/image_encoder`; returns both folders."""
    import torch
    from safetensors.torch import save_file

    adapter, encoder = Path(folder) / "adapter", Path(folder) / "image_encoder"
    joint, inner = transformer.config.joint_attention_dim, transformer.inner_dim
    tensors: dict[str, torch.Tensor] = {}
    with seeded(seed):
        _linear(tensors, "ip_adapter_proj_model.proj", 4 * joint, VISION["projection_dim"])
        _norm(tensors, "ip_adapter_proj_model.norm", joint)
        for i in range(transformer.config.num_layers):
            for kind in ("k", "v"):
                _linear(tensors, f"double_blocks.{i}.processor.ip_adapter_double_stream_{kind}_proj", inner, joint)
        adapter.mkdir(parents=True, exist_ok=True)
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(adapter / weight_name))
    _tiny_vision_encoder(seed + 1).save_pretrained(encoder)
    return adapter, encoder


def save_pipeline(pipe: Any, folder: str | Path) -> Path:
    """`save_pretrained` in safetensors: the layout of a hub snapshot (model_index.json at the top)."""
    folder = Path(folder)
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def save_as_hub_cache(source: str | Path, cache_dir: str | Path, repo_id: str, commit: str = "0" * 40) -> Path:
    """Copy a folder into a Hugging Face cache layout (`models--org--name/{refs/main,snapshots/<commit>}`)
    so it loads offline by hub id with `HF_HUB_CACHE=cache_dir`; returns the snapshot folder."""
    import shutil

    repo = Path(cache_dir) / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / commit
    shutil.copytree(source, snapshot, dirs_exist_ok=True)
    (repo / "refs").mkdir(parents=True, exist_ok=True)
    (repo / "refs" / "main").write_text(commit)
    return snapshot


def tiny_model(kind: str, root: str | Path, seed: int = 0, ip_adapter: bool = True, steps: int = 2,
               **model_args: Any) -> Any:
    """Build, save and wrap a tiny model: an `SDXLModel` / `StableDiffusionModel` / `FluxModel` loaded
    through `model_path` (and `ip_adapter_path`) exactly as a user's local snapshot would be.

    `kind` is one of KINDS; `root` receives the folders; `model_args` override constructor
    arguments (default: CPU, fp32, `steps` steps, guidance as the real model's YAML).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    root = Path(root)
    args: dict[str, Any] = {"device": "cpu", "dtype": "fp32", "steps": steps, **model_args}
    if kind == "sd15":
        from imgbench.models.sd import StableDiffusionModel

        return StableDiffusionModel(model_path=str(_saved(tiny_sd15_pipeline(seed), root / "sd15")), **args)
    if kind == "sdxl":
        from imgbench.models.sd import SDXLModel

        pipe = tiny_sdxl_pipeline(seed)
        if ip_adapter:
            args.setdefault("ip_adapter_path", str(write_sdxl_ip_adapter(root / "ip-adapter", pipe.unet, seed)))
            args.setdefault("ip_adapter_subfolder", "sdxl_models")
            args.setdefault("ip_adapter_weight", "ip-adapter-plus_sdxl_vit-h.safetensors")
        return SDXLModel(model_path=str(_saved(pipe, root / "sdxl")), **{"guidance": 5.0, **args})
    from imgbench.models.flux import FluxModel

    dev = kind == "flux-dev"
    pipe = tiny_flux_pipeline(seed, guidance_embeds=dev)
    if ip_adapter and dev:
        adapter, encoder = write_flux_ip_adapter(root / "flux-ip-adapter", pipe.transformer, seed)
        args.setdefault("ip_adapter_path", str(adapter))
        args.setdefault("image_encoder_path", str(encoder))
    defaults = {"guidance": 3.5, "max_sequence_length": 32} if dev else {"guidance": 0.0, "max_sequence_length": 32}
    return FluxModel(model_path=str(_saved(pipe, root / kind)), **{**defaults, **args})


def _saved(pipe: Any, folder: Path) -> Path:
    if not (folder / "model_index.json").is_file():
        save_pipeline(pipe, folder)
    return folder


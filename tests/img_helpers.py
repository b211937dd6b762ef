"""Builders for the IMG tests: tiny real transformers/diffusers models from configs, saved to folders.

No hub access: the tokenizer is the fixture in tests/fixtures/img/tokenizer, every model is a real
class at a tiny config with seeded random weights.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

FIXTURES = Path(__file__).parent / "fixtures" / "img"
TOKENIZER = FIXTURES / "tokenizer"
CLIP_SIZE, PATCH = 28, 14
TEXT_HIDDEN = 32


def tiny_clip(folder: Path, seed: int = 0) -> Path:
    """A CLIP vision tower (28 px, 2×2 patches) with its image processor, like openai/clip-vit-large-patch14-336."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=3, num_attention_heads=2,
                              image_size=CLIP_SIZE, patch_size=PATCH, projection_dim=16)
    CLIPVisionModel(config).save_pretrained(folder)
    CLIPImageProcessor(size={"shortest_edge": CLIP_SIZE}, crop_size={"height": CLIP_SIZE, "width": CLIP_SIZE}
                       ).save_pretrained(folder)
    return folder


def original_llava(folder: Path, clip_folder: Path, seed: int = 1) -> dict[str, torch.Tensor]:
    """An original-format (haotian-liu/LLaVA) LLaVA-1.5 folder: config with mm_* fields, LLaMA + projector keys."""
    from safetensors.torch import save_file
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    vocab = len(AutoTokenizer.from_pretrained(TOKENIZER))
    llama_config = LlamaConfig(vocab_size=vocab, hidden_size=TEXT_HIDDEN, intermediate_size=64, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                               bos_token_id=1, eos_token_id=2, tie_word_embeddings=False)
    llama = LlamaForCausalLM(llama_config)
    state = {k: v.contiguous() for k, v in llama.state_dict().items()}
    state["model.mm_projector.0.weight"] = torch.randn(TEXT_HIDDEN, 16) * 0.2
    state["model.mm_projector.0.bias"] = torch.randn(TEXT_HIDDEN) * 0.1
    state["model.mm_projector.2.weight"] = torch.randn(TEXT_HIDDEN, TEXT_HIDDEN) * 0.2
    state["model.mm_projector.2.bias"] = torch.randn(TEXT_HIDDEN) * 0.1
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "model.safetensors"))
    keys = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "max_position_embeddings", "rms_norm_eps", "bos_token_id", "eos_token_id",
            "hidden_act")
    config = {k: getattr(llama_config, k) for k in keys}
    config.update({"architectures": ["LlavaLlamaForCausalLM"], "model_type": "llava_llama", "rope_theta": 10000.0,
                   "mm_vision_tower": str(clip_folder), "mm_projector_type": "mlp2x_gelu", "mm_hidden_size": 16,
                   "mm_vision_select_layer": -2, "mm_vision_select_feature": "patch", "image_aspect_ratio": "pad",
                   "mm_use_im_start_end": False, "mm_use_im_patch_token": False, "tie_word_embeddings": False})
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    for file in TOKENIZER.iterdir():
        shutil.copy(file, folder / file.name)
    return state


def tiny_llava(root: Path, seed: int = 1) -> Path:
    """A converted (transformers-layout) tiny LLaVA folder (hidden size TEXT_HIDDEN), built through the real
    converter; another `seed` gives another language model (e.g. an 'original' vs a 'finetuned' MLLM)."""
    from imgbench.mllm.convert_llava import convert_llava

    clip = tiny_clip(root / "clip")
    original_llava(root / "llava-original", clip, seed=seed)
    return convert_llava(root / "llava-original", root / "llava")


def save_aligner(path: Path, guidance_dim: int, token_dim: int, seed: int = 0, weight_std: float = 2.0,
                 bias_std: float = 20.0) -> Path:
    """A tiny aligner (depth 1, 1 head of 8) whose zero_linear is randomised, so it visibly moves tokens.

    Size it from the two ends it joins: `guidance_dim` = the MLLM's hidden size (or the text
    encoder's width), `token_dim` = the model's IP-token width (`model.image_token_shape[1]`).
    """
    from imgbench.methods.img.aligner import AlignerConfig, ImplicitAligner
    from safetensors.torch import save_file

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        aligner = ImplicitAligner(AlignerConfig(guidance_dim=guidance_dim, token_dim=token_dim, depth=1, heads=1,
                                                head_dim=8))
        torch.nn.init.normal_(aligner.zero_linear.weight, std=weight_std)
        torch.nn.init.normal_(aligner.zero_linear.bias, std=bias_std)
    save_file(aligner.state_dict(), str(path))
    return path


def tiny_qwen_folder(folder: Path, seed: int = 0) -> Path:
    """A saved tiny Qwen2.5-VL (config + weights + the scorers' processor fixture), loadable by path."""
    from scorer_helpers import tiny_qwen_vl

    model, processor = tiny_qwen_vl(seed)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder

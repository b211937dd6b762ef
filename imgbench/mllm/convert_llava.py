"""Convert a LLaVA checkpoint in the original (haotian-liu/LLaVA) format to the transformers layout.

The official IMG detector (`shi-labs/IMG` `ckpts/llava/`, a finetuned LLaVA-1.5-13B) ships as
`LlavaLlamaForCausalLM`: LLaMA keys under `model.*` / `lm_head`, the projector under
`model.mm_projector.{0,2}`, config fields `mm_*`, and usually no vision-tower weights (LLaVA loads
`mm_vision_tower`, CLIP ViT-L/14-336, separately). transformers' `LlavaForConditionalGeneration`
wants the language model under `model.language_model`, the projector as `linear_1` / `linear_2`,
the CLIP tower inside the checkpoint, and `<image>` / `<pad>` as real vocabulary entries. The
mapping was learned by reading transformers' conversion script; the code is our own.

New vocabulary rows (`<image>`, `<pad>`, padding to a multiple of 64) are set to the mean of the
existing rows: `<image>` rows are always replaced by image features and `<pad>` is masked, so the
logits of the original vocabulary are unchanged.

    python -m imgbench.mllm.convert_llava ckpts/llava ckpts/llava-hf [--vision-tower DIR_OR_HUB_ID]
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from imgbench.errors import UserError
from imgbench.mllm.weights import read_config

logger = logging.getLogger(__name__)

LLAMA_KEYS = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
              "num_key_value_heads", "hidden_act", "max_position_embeddings", "rms_norm_eps", "rope_theta",
              "rope_scaling", "attention_bias", "bos_token_id", "eos_token_id", "tie_word_embeddings")


def read_original_state(folder: Path) -> dict[str, Any]:
    import torch

    files = sorted(folder.glob("*.safetensors")) or sorted(folder.glob("pytorch_model*.bin"))
    if not files:
        raise UserError(f"{folder} has no *.safetensors or pytorch_model*.bin weight files.")
    state: dict[str, Any] = {}
    for file in files:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            state.update(load_file(str(file)))
        else:
            state.update(torch.load(file, map_location="cpu", weights_only=True))
    return state


def map_key(key: str) -> str | None:
    """Original key → transformers LLaVA key (None: drop). Vision-tower keys are handled separately."""
    if key.endswith("rotary_emb.inv_freq"):
        return None
    if key.startswith("model.mm_projector."):
        index, rest = key[len("model.mm_projector."):].split(".", 1)
        return f"model.multi_modal_projector.linear_{ {'0': 1, '2': 2}[index] }.{rest}"
    if key.startswith("model."):
        return "model.language_model." + key[len("model."):]
    if key.startswith("lm_head."):
        return key
    raise UserError(f"unexpected key {key!r} in the original LLaVA checkpoint.")


def _padded_rows(matrix: Any, rows: int) -> Any:
    import torch

    extra = rows - matrix.shape[0]
    if extra <= 0:
        return matrix
    return torch.cat([matrix, matrix.float().mean(0, keepdim=True).to(matrix.dtype).expand(extra, -1)], dim=0)


def check_original_config(config: dict[str, Any], folder: Path) -> None:
    if "mm_vision_tower" not in config and config.get("model_type") != "llava_llama":
        raise UserError(f"{folder}/config.json is not an original-format LLaVA config (no mm_vision_tower).")
    if config.get("mm_projector_type", "linear") != "mlp2x_gelu":
        raise UserError(f"{folder}: mm_projector_type {config.get('mm_projector_type')!r} is not supported; "
                        f"only LLaVA-1.5's 'mlp2x_gelu' maps onto transformers' LLaVA projector.")
    if config.get("mm_use_im_start_end"):
        raise UserError(f"{folder}: mm_use_im_start_end=true (image start/end tokens) is not supported.")


def convert_llava(source: str | Path, output: str | Path, vision_tower: str | None = None) -> Path:
    """Write a transformers LLaVA folder (weights, config, processor) converted from `source`."""
    import torch
    from transformers import (
        AddedToken,
        AutoTokenizer,
        CLIPImageProcessor,
        CLIPVisionModel,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaImageProcessor,
        LlavaProcessor,
    )

    source, output = Path(source), Path(output)
    config = read_config(source)
    check_original_config(config, source)
    tower = vision_tower or config["mm_vision_tower"]
    clip = CLIPVisionModel.from_pretrained(tower)
    clip_processor = CLIPImageProcessor.from_pretrained(tower)
    state = read_original_state(source)
    vision_prefix = "model.vision_tower.vision_tower."
    vision_state = {k[len(vision_prefix):]: v for k, v in state.items() if k.startswith(vision_prefix)}
    if vision_state:
        own = clip.state_dict()
        vision_state = {(k if k in own else k.removeprefix("vision_model.")): v for k, v in vision_state.items()}
        clip.load_state_dict(vision_state, strict=True)
        logger.info("vision tower weights taken from the checkpoint (%d tensors)", len(vision_state))

    tokenizer = AutoTokenizer.from_pretrained(source)
    tokenizer.add_tokens([AddedToken("<image>", special=True, normalized=False)], special_tokens=True)
    tokenizer.add_special_tokens({"pad_token": "<pad>"})
    image_token_id = tokenizer.convert_tokens_to_ids("<image>")
    vocab = -(-len(tokenizer) // 64) * 64

    text_config = LlamaConfig(**{k: config[k] for k in LLAMA_KEYS if k in config})
    text_config.vocab_size = vocab
    text_config.pad_token_id = tokenizer.pad_token_id
    select = config.get("mm_vision_select_feature", "patch")
    llava_config = LlavaConfig(
        text_config=text_config.to_dict(), vision_config=clip.config.to_dict(), image_token_id=image_token_id,
        projector_hidden_act="gelu", vision_feature_layer=int(config.get("mm_vision_select_layer", -2)),
        vision_feature_select_strategy="default" if select == "patch" else "full",
        image_seq_length=(clip.config.image_size // clip.config.patch_size) ** 2, pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)))
    with torch.device("meta"):
        model = LlavaForConditionalGeneration(llava_config)
    mapped: dict[str, Any] = {}
    for key, value in state.items():
        if key.startswith(vision_prefix):
            continue
        new = map_key(key)
        if new is not None:
            mapped[new] = value
    for key in ("model.language_model.embed_tokens.weight", "lm_head.weight"):
        if key in mapped:
            mapped[key] = _padded_rows(mapped[key], vocab)
    dtype = mapped["lm_head.weight"].dtype if "lm_head.weight" in mapped else torch.float16
    for key, value in clip.state_dict().items():
        mapped[f"model.vision_tower.{key}"] = value.to(dtype)
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(mapped)), sorted(set(mapped) - expected)
    if missing or unexpected:
        raise UserError(f"converting {source}: missing {missing[:5]} unexpected {unexpected[:5]}; is it LLaVA-1.5?")
    model.load_state_dict(mapped, strict=True, assign=True)
    image_processor = LlavaImageProcessor(**{**clip_processor.to_dict(), "image_processor_type": "LlavaImageProcessor",
                                             "do_pad": config.get("image_aspect_ratio") == "pad"})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer,
                               patch_size=clip.config.patch_size, vision_feature_select_strategy=llava_config.
                               vision_feature_select_strategy, num_additional_image_tokens=1)
    output.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(output)
    processor.save_pretrained(output)
    return output


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m imgbench.mllm.convert_llava", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", help="original-format LLaVA folder (config.json with mm_* fields)")
    parser.add_argument("output", help="folder to write the transformers LLaVA to")
    parser.add_argument("--vision-tower", help="CLIP vision folder or hub id (default: the config's mm_vision_tower)")
    args = parser.parse_args(argv)
    try:
        print(convert_llava(args.source, args.output, args.vision_tower))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`imgbench train img`: build the IP-token/guidance cache for preference pairs, then train an aligner.

Imports nothing heavy at import time (the train dispatcher lists trainers without torch).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

EPILOG = """examples:
  imgbench pairs <run_id> --scorer pickscore --out pairs.jsonl
  imgbench train img --pairs pairs.jsonl --model sdxl --mllm ckpts/llava-hf --out aligners/sdxl-mine
  imgbench train img --pairs pickapic_v2/train --limit 851000 --model sdxl --mllm ckpts/llava-hf \\
      --pooling none --cache-dtype fp16 --steps 100000 --out aligners/sdxl-paper \\
      --eval-every 5000 --eval-task pickapic-test --eval-scorer pickscore --eval-limit 500
  imgbench train img ... --preference dpo --lam 1 --reduction sum      (Table 5c / loss ablations)
Rerunning the same command resumes: an interrupted cache build continues after its last shard and
training continues from checkpoint.pt with identical batches.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    data = parser.add_argument_group("data")
    data.add_argument("--pairs", help="pairs JSONL from `imgbench pairs`, or Pick-a-Pic v2 parquet (file or folder)")
    data.add_argument("--limit", type=int, help="use only the first N pairs")
    data.add_argument("--cache", help="cache folder (default OUT/cache); reused when its identity matches")
    data.add_argument("--cache-dtype", default="fp16", choices=["fp16", "bf16", "fp32"])
    data.add_argument("--pooling", default="none", choices=["none", "mean"], help="guidance states kept whole or mean")
    data.add_argument("--shard-size", type=int, default=256, help="pairs per cache shard")
    data.add_argument("--encode-batch", type=int, default=8, help="pairs per encoding call")
    guide = parser.add_argument_group("tokens and guidance")
    guide.add_argument("--model", help="model whose IP-Adapter encodes the images (e.g. sdxl)")
    guide.add_argument("--model-arg", action="append", metavar="K=V", help="model parameter (repeatable)")
    guide.add_argument("--model-path", help="local folder with the model's weights")
    guide.add_argument("--device", help="device for the model and the MLLM")
    guide.add_argument("--dtype", help="model dtype (fp32, fp16, bf16)")
    guide.add_argument("--guidance", default="finetuned-mllm", choices=["text", "mllm", "finetuned-mllm"],
                       help="guidance source (paper Table 5a); text = the model's own text embedding")
    guide.add_argument("--mllm", help="MLLM folder or hub id (transformers layout) for mllm guidance")
    guide.add_argument("--conversation", default="llava_v0", help="conversation template (default llava_v0)")
    guide.add_argument("--mllm-dtype", default="bf16", choices=["fp32", "fp16", "bf16"])
    guide.add_argument("--templates", default="official", help="'official' or a JSON list of {prompt} templates")
    guide.add_argument("--template", help="one fixed question template (ablation)")
    guide.add_argument("--data-dir", metavar="DIR", help="local copies of published files: the official templates "
                       "are read from DIR/img_templates/edit_instructions.json (default: $IMGBENCH_DATA_DIR, "
                       "else the cache, else download)")
    arch = parser.add_argument_group("aligner (released: depth 4, 20 heads × 64, ff 4)")
    arch.add_argument("--depth", type=int, default=4)
    arch.add_argument("--heads", type=int, default=20)
    arch.add_argument("--head-dim", type=int, default=64)
    arch.add_argument("--ff-mult", type=int, default=4)
    obj = parser.add_argument_group("objective (paper §3.4)")
    obj.add_argument("--preference", default="dpo+spin", choices=["dpo+spin", "dpo", "spin", "none"])
    obj.add_argument("--lam", type=float, default=1.0, help="λ weighting L_pref (paper 1)")
    obj.add_argument("--reduction", default="mean", choices=["mean", "sum"], help="‖·‖² over token dims")
    obj.add_argument("--k", type=int, default=10, help="consecutive qualifying steps before f_ref ← f (paper 10)")
    obj.add_argument("--judgement", default="batch-mean", choices=["batch-mean", "per-sample"])
    opt = parser.add_argument_group("optimisation (paper: AdamW, lr 1e-4, wd 1e-4, batch 8, 100K steps)")
    opt.add_argument("--steps", type=int, default=100_000)
    opt.add_argument("--batch-size", type=int, default=8)
    opt.add_argument("--lr", type=float, default=1e-4)
    opt.add_argument("--weight-decay", type=float, default=1e-4)
    opt.add_argument("--train-passes", type=int, default=1, help="aligner passes inside the loss")
    opt.add_argument("--seed", type=int, default=0)
    opt.add_argument("--checkpoint-every", type=int, default=1000)
    opt.add_argument("--log-every", type=int, default=50)
    opt.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev = parser.add_argument_group("periodic evaluation (runs the img method with the current weights)")
    ev.add_argument("--eval-every", type=int, default=0, help="steps between evaluations (0: never)")
    ev.add_argument("--eval-task", help="task to evaluate on (e.g. 500 Pick-a-Pic test prompts)")
    ev.add_argument("--eval-scorer", help="scorer whose mean is logged (paper: PickScore)")
    ev.add_argument("--eval-limit", type=int, help="first N prompts of the task")
    ev.add_argument("--eval-seeds", default="0", help="seeds for evaluation (default 0)")
    parser.add_argument("--out", required=True, help="folder for aligner.safetensors, aligner.json, log, checkpoint")


def _guidance(args: argparse.Namespace, model: Any) -> tuple[Any, dict[str, Any]]:
    from imgbench.methods.img.guidance import text_guidance

    from imgbench.errors import UserError
    from imgbench.mllm.questions import build_templates
    from imgbench.util.hashing import stable_int

    if args.guidance == "text":
        return (lambda losers, pairs: text_guidance(model, [p.prompt for p in pairs])), {"source": "text"}
    if not args.mllm:
        raise UserError(f"--guidance {args.guidance} needs --mllm (a transformers LLaVA or Qwen2.5-VL folder/hub id).")
    from imgbench.mllm.hf import load_mllm

    mllm = load_mllm(args.mllm, conversation=args.conversation, dtype=args.mllm_dtype, device=args.device)
    templates = build_templates(args.templates, args.template)

    def states(losers: list[Any], pairs: list[Any]) -> list[Any]:
        questions = [templates.question(p.prompt, stable_int("pair", p.id) % 2**31) for p in pairs]
        return mllm.hidden_states(losers, questions)

    return states, {"source": args.guidance, "mllm": mllm.identity(), "templates": templates.identity(),
                    "question_seed": "stable_int('pair', pair id)"}


def _eval_hook(args: argparse.Namespace) -> Any:
    from imgbench.errors import UserError

    if not args.eval_every:
        return None
    if not (args.eval_task and args.eval_scorer and args.model):
        raise UserError("--eval-every needs --eval-task, --eval-scorer and --model.")

    def evaluate(step: int, weights: Path) -> dict[str, Any]:
        from imgbench.runner import RunRequest, execute
        from imgbench.util.text import parse_key_values, parse_seeds

        method_args = {"aligner": str(weights), "guidance": args.guidance, "heads": args.heads,
                       "conversation": args.conversation, "mllm_dtype": args.mllm_dtype, "templates": args.templates}
        if args.mllm:  # the method reads guidance 'mllm' (Table 5a, un-finetuned) from original_mllm
            method_args["original_mllm" if args.guidance == "mllm" else "mllm"] = args.mllm
        if args.template:
            method_args["template"] = args.template
        request = RunRequest(task=args.eval_task, model=args.model, method="img", method_args=method_args,
                             model_args=parse_key_values(args.model_arg, "--model-arg"), model_path=args.model_path,
                             seeds=parse_seeds(args.eval_seeds), limit=args.eval_limit, device=args.device,
                             dtype=args.dtype, output=Path(args.out) / "eval-runs", scorers=(args.eval_scorer,),
                             command=f"imgbench train img (evaluation at step {step})")
        outcome = execute(request, score=True)
        scorer = next(iter((outcome.metrics or {}).get("scorers", {}).values()), {})
        return {"run": str(outcome.plan.store.root), "scorer": args.eval_scorer,
                "mean": scorer.get("overall", {}).get("mean")}

    return evaluate


def main(args: argparse.Namespace) -> int:
    from imgbench.suites.fetch import data_dir_override

    with data_dir_override(args.data_dir):
        return _train(args)


def _check_args(args: argparse.Namespace) -> None:
    """Numbers and paths checked before any model, MLLM or cache is touched (each is a UserError, exit 2)."""
    from imgbench.errors import UserError

    at_least_one = ("steps", "batch_size", "train_passes", "depth", "heads", "head_dim", "ff_mult", "k",
                    "checkpoint_every", "log_every", "encode_batch")
    bad = [f"--{name.replace('_', '-')} {getattr(args, name)}" for name in at_least_one if getattr(args, name) < 1]
    bad += [f"--{name.replace('_', '-')} {getattr(args, name)}" for name in ("lr", "weight_decay", "lam", "eval_every")
            if getattr(args, name) < 0 or (name == "lr" and args.lr == 0)]
    if bad:
        raise UserError(f"train img: invalid {', '.join(bad)} (counts and sizes must be at least 1, --lr above 0, "
                        f"--weight-decay, --lam and --eval-every at least 0).")
    if args.pairs and not Path(args.pairs).exists():
        raise UserError(f"pairs source {args.pairs} not found; make one with `imgbench pairs` or give Pick-a-Pic "
                        f"parquet (a file or a folder of shards).")


def _train(args: argparse.Namespace) -> int:
    from imgbench.methods.img.aligner import AlignerConfig
    from imgbench.methods.img.cache import CachedPairs, CacheOptions, build_cache, read_manifest
    from imgbench.methods.img.objective import ObjectiveConfig
    from imgbench.methods.img.trainer import TrainConfig, Trainer
    from rich.console import Console

    from imgbench.errors import UserError

    _check_args(args)
    out = Path(args.out)
    cache_dir = Path(args.cache) if args.cache else out / "cache"
    manifest = read_manifest(cache_dir)
    if not (manifest and manifest.get("complete")):
        if not (args.pairs and args.model):
            raise UserError(f"no complete cache in {cache_dir}: give --pairs and --model (and --mllm) to build it.")
        from imgbench.components import build_model
        from imgbench.pairs import read_pair_source, source_identity
        from imgbench.util.text import parse_key_values

        model_spec, model = build_model(args.model, parse_key_values(args.model_arg, "--model-arg"), args.device,
                                        args.dtype, args.model_path)
        if not model.supports_image_tokens:
            raise UserError(f"model {model_spec.name!r} has no IP-Adapter (image tokens); IMG needs one.")
        guidance, guidance_identity = _guidance(args, model)
        identity = {"pairs": source_identity(args.pairs, args.limit),
                    "model": {"name": model_spec.name, **model.identity()}, "guidance": guidance_identity}
        options = CacheOptions(shard_size=args.shard_size, dtype=args.cache_dtype, pooling=args.pooling)
        build_cache(cache_dir, read_pair_source(args.pairs, args.limit), identity, model.encode_image, guidance,
                    options, batch_size=args.encode_batch)
    cache = CachedPairs(cache_dir)
    token_count, token_dim = cache.manifest["token_shape"]
    try:
        config = TrainConfig(
            aligner=AlignerConfig(guidance_dim=cache.manifest["guidance_dim"], token_dim=token_dim, depth=args.depth,
                                  heads=args.heads, head_dim=args.head_dim, ff_mult=args.ff_mult),
            objective=ObjectiveConfig(preference=args.preference, lam=args.lam, reduction=args.reduction, k=args.k,
                                      judgement=args.judgement),
            steps=args.steps, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
            train_passes=args.train_passes, seed=args.seed, checkpoint_every=args.checkpoint_every,
            log_every=args.log_every, eval_every=args.eval_every)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    trainer = Trainer(cache, out, config, _eval_hook(args))
    resumed = trainer.try_resume()
    final = trainer.run(progress=not args.no_progress)
    Console().print(f"{'resumed, ' if resumed else ''}trained {final['step']} steps on {len(cache)} pairs "
                    f"({token_count}×{token_dim} tokens): L_base {final.get('base', float('nan')):.4g}, "
                    f"reference updates {final.get('ref_updates', 0)} → {out / 'aligner.safetensors'}")
    return 0

"""GPU smoke run: every tiny model family on CUDA in fp16, images/s, with and without IP tokens.

Offline like CI (tiny random-weight models from imgbench.models.tiny, no hub), so it runs on
any lent GPU machine; nothing in CI depends on it. Prints one JSON line per model and a
summary; also checks on CUDA that an image does not depend on its batch (max pixel difference).

    python benchmarks/gpu_smoke.py --size 64 --batch 8 --steps 4 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from imgbench.api.records import GenerationRequest, Prompt
from imgbench.models.tiny import KINDS, tiny_model


def _requests(n: int, size: int) -> list[GenerationRequest]:
    return [GenerationRequest(prompt=Prompt(id=str(i), text=f"a photo of {i} red cubes"), seed=i, height=size,
                              width=size) for i in range(n)]


def _timed(fn, repeats: int, device: str) -> float:
    import torch

    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    best = float("inf")
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def smoke(kind: str, root: str, args: argparse.Namespace) -> dict:
    """Load one tiny model on the device, warm it up, then time plain and IP-token generation."""
    model = tiny_model(kind, root, device=args.device, dtype=args.dtype, steps=args.steps)
    batch = _requests(args.batch, args.size)
    images = model.generate(batch)  # warm-up: loads weights, autotunes kernels
    alone = model.generate(batch[-1:])[0]
    diff = np.abs(np.asarray(alone, dtype=int) - np.asarray(images[-1], dtype=int)).max()
    row = {"model": kind, "dtype": args.dtype, "size": args.size, "batch": args.batch, "steps": args.steps,
           "batch_vs_alone_max_pixel_diff": int(diff),
           "images_per_s": round(args.batch / _timed(lambda: model.generate(batch), args.repeats, args.device), 2)}
    if model.supports_image_tokens:
        tokens = model.encode_image(images)
        row["ip_tokens"] = list(tokens.shape)
        with_ip = _timed(lambda: model.generate(batch, image_tokens=tokens, ip_scale=0.5), args.repeats, args.device)
        row["ip_images_per_s"] = round(args.batch / with_ip, 2)
        encode = _timed(lambda: model.encode_image(images), args.repeats, args.device)
        row["encode_images_per_s"] = round(args.batch / encode, 2)
    model.close()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="fp16")
    parser.add_argument("--device", default="cuda", help="cuda (the point); cpu with --dtype fp32 for a dry run")
    args = parser.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu_smoke: no CUDA device visible")
    with tempfile.TemporaryDirectory() as root:
        for kind in KINDS:
            row = smoke(kind, f"{root}/{kind}", args)
            if args.device.startswith("cuda"):
                row["peak_mem_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            print(json.dumps(row), flush=True)
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(json.dumps({"device": name, "torch": torch.__version__}))


if __name__ == "__main__":
    main()

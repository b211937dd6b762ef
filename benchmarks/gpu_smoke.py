"""GPU smoke run: every tiny model family on CUDA in fp16, images/s, with and without IP tokens, and the
tiny Instruct-Pix2Pix editors (SD 1.5, SDXL) through the method's editor class, edits/s, and SLD's
detector (tiny OWLv2 + SAM) and latent operations (inversion, delete + add, frozen-step re-generation) on a tiny
SD 1.5 pipeline through the method's classes, corrections/s.

Offline like CI (tiny random-weight models from imgbench.models.tiny, no hub), so it runs on
any lent GPU machine; nothing in CI depends on it. Prints one JSON line per model and a
summary; also checks on CUDA that an image does not depend on its batch (max pixel difference).

    python benchmarks/gpu_smoke.py --size 64 --batch 8 --steps 4 --repeats 3
    python benchmarks/gpu_smoke.py --device cpu --dtype fp32 --batch 2 --steps 2 --repeats 1   # CPU dry run

tests/test_gpu_smoke.py runs the dry run in the default test run and the CUDA run under the `gpu` marker.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

import numpy as np

from imgbench.api.records import GenerationRequest, Prompt
from imgbench.models.tiny import KINDS, save_pipeline, tiny_ip2p_pipeline, tiny_model, tiny_owlv2, tiny_sam

EDITORS = ("ip2p-sd15", "ip2p-sdxl")
SLD = ("sld-sd15",)


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


def smoke_editor(kind: str, root: str, args: argparse.Namespace) -> dict:
    """Load one tiny Instruct-Pix2Pix editor on the device, then time edits of a batch of images."""
    from imgbench.methods.instruct_pix2pix.editor import DiffusersEditor

    folder = save_pipeline(tiny_ip2p_pipeline(kind.removeprefix("ip2p-"), seed=0), root)
    editor = DiffusersEditor("", editor_path=str(folder), steps=args.steps, resolution=args.size, device=args.device,
                             dtype=args.dtype)
    sources = [image.convert("RGB") for image in tiny_model("sd15", f"{root}-base", device=args.device,
                                                            dtype=args.dtype, steps=1).generate(
        _requests(args.batch, args.size))]
    texts, seeds = [f"make it {i} times bluer" for i in range(args.batch)], list(range(args.batch))
    edited = editor.edit(sources, texts, seeds)  # warm-up
    alone = editor.edit(sources[-1:], texts[-1:], seeds[-1:])[0]
    diff = np.abs(np.asarray(alone, dtype=int) - np.asarray(edited[-1], dtype=int)).max()
    seconds = _timed(lambda: editor.edit(sources, texts, seeds), args.repeats, args.device)
    return {"model": kind, "dtype": args.dtype, "size": args.size, "batch": args.batch, "steps": args.steps,
            "batch_vs_alone_max_pixel_diff": int(diff), "edits_per_s": round(args.batch / seconds, 2)}


def smoke_sld(kind: str, root: str, args: argparse.Namespace) -> dict:
    """SLD's detector, masks and latent operations on the device: one correction (delete + add) per image."""
    import torch
    from imgbench.methods.sld.backends import SD15Backend
    from imgbench.methods.sld.detector import OwlDetector, SamMasker
    from imgbench.methods.sld.latent_ops import LatentEditor, to_latent_mask
    from imgbench.methods.sld.operations import diff

    model = tiny_model("sd15", f"{root}-base", device=args.device, dtype=args.dtype, steps=args.steps)
    sources = [image.convert("RGB") for image in model.generate(_requests(args.batch, args.size))]
    detector = OwlDetector("", path=str(tiny_owlv2(f"{root}-owlv2", image_size=args.size)), attribute_threshold=0.0,
                           primitive_threshold=0.0, device=args.device)
    sam = SamMasker("", path=str(tiny_sam(f"{root}-sam", image_size=args.size)), device=args.device)
    editor = LatentEditor(SD15Backend(model.pipeline), steps=args.steps)
    objects = [{"name": "cube", "attributes": ["red"]}]

    def correct(image, seed: int):
        found = detector.detect(image, objects)
        ops = diff(found, [{"name": "red ball #1", "box": [0.25, 0.25, 0.5, 0.5]}])
        with torch.inference_mode():
            background = editor.invert(image)
            height, width = background.shape[-2:]
            masks = {d["name"]: to_latent_mask(m, height, width) for d, m in
                     zip(found, sam.masks(image, [d["box"] for d in found]), strict=True)}
            composition = editor.compose(background, ops, masks, lambda im, name: (
                [0.25, 0.25, 0.5, 0.5], to_latent_mask(torch.ones(args.size, args.size), height, width)), seed=seed)
            return editor.regenerate(composition, "a garden with a red ball")

    fixed = [correct(image, i) for i, image in enumerate(sources)]  # warm-up
    again = correct(sources[-1], args.batch - 1)
    diff_px = np.abs(np.asarray(again, dtype=int) - np.asarray(fixed[-1], dtype=int)).max()
    seconds = _timed(lambda: [correct(image, i) for i, image in enumerate(sources)], args.repeats, args.device)
    model.close()
    return {"model": kind, "dtype": args.dtype, "size": args.size, "batch": args.batch, "steps": args.steps,
            "batch_vs_alone_max_pixel_diff": int(diff_px), "corrections_per_s": round(args.batch / seconds, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="fp16")
    parser.add_argument("--device", default="cuda", help="cuda (the point); cpu with --dtype fp32 for a dry run")
    parser.add_argument("--kinds", default=",".join((*KINDS, *EDITORS, *SLD)), help="comma-separated subset to run")
    args = parser.parse_args()
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("gpu_smoke: no CUDA device visible")
    with tempfile.TemporaryDirectory() as root:
        for kind in args.kinds.split(","):
            if kind not in (*KINDS, *EDITORS, *SLD):
                raise SystemExit(f"gpu_smoke: unknown kind {kind!r}; kinds: {', '.join((*KINDS, *EDITORS, *SLD))}")
            run = smoke_editor if kind in EDITORS else smoke_sld if kind in SLD else smoke
            row = run(kind, f"{root}/{kind}", args)
            if args.device.startswith("cuda"):
                row["peak_mem_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
            print(json.dumps(row), flush=True)
    name = torch.cuda.get_device_name(0) if args.device.startswith("cuda") else "cpu"
    print(json.dumps({"device": name, "torch": torch.__version__}))


if __name__ == "__main__":
    main()

"""Will the model fit? Checked before loading, so a run fails with advice instead of mid-way.

The weight footprint is counted exactly from safetensors headers when the files are local
(parameter counts × bytes of the chosen dtype); otherwise the model's declared `memory_gb`
(its 16-bit footprint) is used. Activations add an allowance on top.
"""

from __future__ import annotations

import json
import logging
import re
import struct
from collections import defaultdict
from pathlib import Path

from imgbench.errors import UserError

logger = logging.getLogger(__name__)

DTYPE_BYTES = {"fp32": 4, "fp16": 2, "bf16": 2}
#: Activations, CUDA context and allocator slack on top of the weights.
OVERHEAD = 1.25
_WEIGHT_FILE = re.compile(r"^(?P<stem>.+?)(?:\.(?P<variant>fp16|bf16|fp32))?(?:-\d+-of-\d+)?\.safetensors$")
GB = 1024**3


def safetensors_params(path: Path) -> int:
    """Number of parameters in a safetensors file, read from its JSON header only."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    total = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in entry["shape"]:
            count *= dim
        total += count
    return total


def folder_params(folder: str | Path) -> dict[str, int]:
    """Parameters per component folder; when a folder holds several variants (fp16 + full), count one."""
    by_variant: dict[tuple[str, str], int] = defaultdict(int)
    for path in Path(folder).rglob("*.safetensors"):
        match = _WEIGHT_FILE.match(path.name)
        variant = (match.group("variant") or "") if match else ""
        by_variant[(str(path.parent.relative_to(folder)), variant)] += safetensors_params(path)
    per_dir: dict[str, int] = {}
    for (directory, _), count in by_variant.items():
        per_dir[directory] = max(per_dir.get(directory, 0), count)
    return per_dir


def available_bytes(device: str) -> int | None:
    """Free memory on a device (None when it cannot be known, e.g. mps)."""
    kind = device.split(":")[0]
    if kind == "cuda":
        import torch

        index = int(device.split(":")[1]) if ":" in device else torch.cuda.current_device()
        return int(torch.cuda.mem_get_info(index)[0])
    if kind == "cpu":
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            return None
    return None


def check_fits(what: str, component_bytes: dict[str, int], device: str, cpu_offload: bool,
               free: int | None = None) -> None:
    """Raise a UserError with advice when the weights clearly do not fit on the device.

    With model CPU offload only the largest component sits on the accelerator at a time.
    """
    if not component_bytes:
        return
    free = available_bytes(device) if free is None else free
    if free is None:
        return
    total = sum(component_bytes.values())
    needed = (max(component_bytes.values()) if cpu_offload else total) * OVERHEAD
    logger.info("%s: ~%.1f GB of weights, ~%.1f GB needed on %s, %.1f GB free", what, total / GB, needed / GB,
                device, free / GB)
    if needed <= free:
        return
    advice = []
    if not cpu_offload and device.startswith("cuda"):
        advice.append("`--model-arg cpu_offload=true` (one component on the GPU at a time)")
    advice.append("`--dtype fp16` or `--dtype bf16` (half the memory of fp32)")
    advice.append("a device with more free memory (`--device`)")
    raise UserError(f"{what} needs about {needed / GB:.1f} GB on {device} but only {free / GB:.1f} GB is free; "
                    f"it would fail while loading. Try {', or '.join(advice)}.")

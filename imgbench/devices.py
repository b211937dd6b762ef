"""Checking a device name before anything is loaded or written: a missing GPU is the user's to fix."""

from __future__ import annotations

import os

from imgbench.errors import UserError

#: CPU threads per process unless OMP_NUM_THREADS says otherwise: on 2 shared cores one thread drew shapes
#: images several times faster than torch's default of one per core (docs/shapes-world.md, "Speed").
DEFAULT_THREADS = "1"

KINDS = ("cpu", "cuda", "mps", "xpu")


def check_device(device: str, flag: str = "--device") -> str:
    """`device` if this machine has it (cpu, cuda, cuda:N, mps, xpu); otherwise a message naming the fix.

    torch is imported only for an accelerator, so `--device cpu` stays as cheap as no flag.
    """
    kind, sep, index = str(device).partition(":")
    if kind not in KINDS or (sep and not index.isdigit()):
        raise UserError(f"{flag} {device}: expected cpu, cuda, cuda:N, mps or xpu.")
    if kind == "cpu":
        return device
    import torch

    backend = {"cuda": torch.cuda, "mps": torch.backends.mps, "xpu": getattr(torch, "xpu", None)}[kind]
    if backend is None or not backend.is_available():
        raise UserError(f"{flag} {device}: this machine has no {kind.upper()} device that torch {torch.__version__} "
                        f"can use; use {flag} cpu, or run where one is.")
    count = backend.device_count() if hasattr(backend, "device_count") else 1
    if sep and int(index) >= count:
        raise UserError(f"{flag} {device}: there are {count} {kind} device(s), numbered from 0; pick one of them.")
    return device


def default_threads() -> None:
    """Set OMP_NUM_THREADS / MKL_NUM_THREADS to the fast default unless the user set them.

    Called by the CLI before torch is imported (torch reads them once), so the README's command needs no
    environment variable to run at the measured speed; a user's own setting always wins.
    """
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, DEFAULT_THREADS)

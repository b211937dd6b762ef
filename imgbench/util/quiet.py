"""Silence third-party loading chatter (progress bars, known-harmless warnings) unless the user asked for more.

transformers draws a "Loading weights" bar and diffusers a "Loading pipeline components" bar on every model
load, and both log advisory warnings (e.g. about float32 on CPU) that say nothing actionable about a run:
in a batch job's log they bury imgbench's own progress lines. With `-v`/`--verbose` everything is shown.
Called where components are built (imgbench.components) and where a diffusers pipeline loads.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import warnings

#: Warnings that are known to be harmless for imgbench's use (regular expressions on the message).
HARMLESS_WARNINGS = (
    r".*`torch_dtype` is deprecated.*",
    r".*upcast_vae.*deprecated.*",
    r".*You have disabled the safety checker.*",
)


def verbose() -> bool:
    """Whether the user asked for more output (`-v` sets imgbench's log level to INFO or lower)."""
    return logging.getLogger("imgbench").getEffectiveLevel() <= logging.INFO


def quiet_loaders(load_diffusers: bool = False) -> None:
    """Turn off transformers' and diffusers' bars and advisory logging, unless verbose.

    Importing transformers costs seconds, so a library not imported yet is not imported here: the
    *_VERBOSITY variables quiet its logging when it is, and transformers takes its bar setting from
    huggingface_hub's at import (turned off here, cheaply). diffusers keeps its own, so its pipeline
    loader calls this with `load_diffusers=True` just before it imports diffusers anyway.
    """
    if verbose():
        return
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    if importlib.util.find_spec("huggingface_hub") is not None:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    for name in ("transformers", "diffusers"):
        os.environ.setdefault(f"{name.upper()}_VERBOSITY", "error")
        if name not in sys.modules and not (name == "diffusers" and load_diffusers):
            continue
        library_logging = importlib.import_module(f"{name}.utils.logging")
        library_logging.set_verbosity_error()
        library_logging.disable_progress_bar()
    for pattern in HARMLESS_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)

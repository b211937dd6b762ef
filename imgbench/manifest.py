"""Facts about the environment that can change a number, recorded with every run."""

from __future__ import annotations

import functools
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from imgbench import __version__
from imgbench.errors import UserError

TRACKED_PACKAGES = ("torch", "diffusers", "transformers", "numpy", "pillow", "scipy")


def package_versions() -> dict[str, str | None]:
    """Installed versions, read from metadata (importing torch just to ask would cost seconds)."""
    found: dict[str, str | None] = {"imgbench": __version__, "python": platform.python_version()}
    for name in TRACKED_PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


@functools.cache
def git_sha() -> str | None:
    """The commit of the imgbench source tree, if it is a git checkout (None for a wheel)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment_facts(command: str) -> dict[str, Any]:
    return {"command": command, "versions": package_versions(), "git_sha": git_sha(),
            "platform": platform.platform(), "host": platform.node()}


def _blocker(path: Path) -> Path:
    """The nearest part of `path` that exists (the folder to create things in, or a file in the way)."""
    return next(p for p in (path, *path.parents) if p.exists())


def check_writable_dir(path: str | Path, flag: str = "--output") -> Path:
    """Refuse, before anything is loaded or written, a folder that could not be created or written into."""
    path = Path(path).absolute()
    blocker = _blocker(path)
    if not blocker.is_dir():
        raise UserError(f"cannot create output folder {path}: {blocker} is a file, not a folder. Choose another "
                        f"{flag}.")
    if not os.access(blocker, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to output folder {path}: {blocker} is not writable (permission denied). "
                        f"Choose another {flag}.")
    return path


def ensure_writable_dir(path: str | Path, flag: str = "--output") -> Path:
    """Create a folder (and parents), turning 'a parent is a file', 'permission denied' and similar into a
    clear user error."""
    path = Path(path)
    check_writable_dir(path, flag)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create output folder {path}: {exc.strerror or exc}. Choose another {flag}.") from None
    return path

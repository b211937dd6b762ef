"""Facts about the environment that can change a number, recorded with every run."""

from __future__ import annotations

import functools
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


def ensure_writable_dir(path: str | Path) -> Path:
    """Create a folder (and parents), turning 'a parent is a file' and similar into a clear user error."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in (path, *path.parents) if p.exists() and not p.is_dir()), path)
        raise UserError(f"cannot create output folder {path}: {blocker} is a file, not a folder. "
                        f"Choose another --output.") from None
    except PermissionError:
        raise UserError(f"cannot create output folder {path}: permission denied. Choose another --output.") from None
    return path

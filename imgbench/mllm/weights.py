"""Where an MLLM's weights come from, resolved to something that can key a cache.

A hub id resolves to the snapshot actually served (its commit, read from the snapshot path); a
local folder to a sha256 over its weight files. Hashing a 26 GB folder takes a minute, so the
digest is cached per (path, size, mtime) under the user cache directory.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from imgbench.errors import UserError
from imgbench.util.hashing import sha256_file

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


def offline() -> bool:
    return any(os.environ.get(name, "") not in ("", "0") for name in ("IMGBENCH_OFFLINE", "HF_HUB_OFFLINE"))


def folder_digest(folder: Path) -> str:
    """sha256 over (relative name, sha256) of every weight and config file in the folder."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in (*WEIGHT_SUFFIXES, ".json"))
    if not any(p.suffix in WEIGHT_SUFFIXES for p in files):
        raise UserError(f"{folder} holds no weight files ({', '.join(WEIGHT_SUFFIXES)}).")
    from platformdirs import user_cache_dir

    cache_path = Path(user_cache_dir("imgbench")) / "digests.json"
    try:
        cache = json.loads(cache_path.read_text())
    except (OSError, json.JSONDecodeError):
        cache = {}
    digest = hashlib.sha256()
    changed = False
    for path in files:
        stat = path.stat()
        key = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        if key not in cache:
            cache[key] = sha256_file(path)
            changed = True
        digest.update(f"{path.relative_to(folder)}\0{cache[key]}\n".encode())
    if changed:
        try:
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache))
            os.replace(tmp, cache_path)
        except OSError:
            pass  # a read-only cache only costs re-hashing next time
    return digest.hexdigest()


def _hub_error(spec: str, exc: Exception) -> UserError:
    how = "it is not in the local hub cache and downloads are off (IMGBENCH_OFFLINE/HF_HUB_OFFLINE)" if offline() \
        else f"download failed ({type(exc).__name__}: {exc})"
    return UserError(f"{spec!r}: {how}. Download it on a connected machine with `huggingface-cli download "
                     f"{'/'.join(spec.split('/')[:2])}` or pass a local path.")


def _split_hub(spec: str) -> tuple[str, str]:
    parts = spec.split("/")
    if len(parts) < 2 or spec.startswith((".", "/", "~")) or not all(parts):
        raise UserError(f"{spec!r}: no such local path, and not a hub reference like 'owner/repo' or "
                        f"'owner/repo/sub/path'.")
    return "/".join(parts[:2]), "/".join(parts[2:])


def resolve_weights(name_or_path: str, revision: str | None = None) -> tuple[str, dict[str, Any]]:
    """(local folder to load from, identity facts) for a local folder, a hub repo 'owner/repo', or a
    folder inside one, 'owner/repo/sub' (e.g. shi-labs/IMG/llava)."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path), {"path": str(path.resolve()), "digest": folder_digest(path)}
    repo, sub = _split_hub(name_or_path)
    from huggingface_hub import snapshot_download

    patterns = [f"{sub}/*"] if sub else ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]
    try:
        folder = snapshot_download(repo, revision=revision, local_files_only=offline(), allow_patterns=patterns)
    except Exception as exc:  # noqa: BLE001 - hub errors of every kind become one actionable message
        raise _hub_error(name_or_path, exc) from None
    return str(Path(folder) / sub), {"hub_id": name_or_path, "revision": Path(folder).name}


def resolve_file(spec: str, revision: str | None = None) -> tuple[Path, dict[str, Any]]:
    """(local file, identity facts) for a local file or 'owner/repo/path/in/repo' on the hub.

    The identity holds the file's sha256 either way: a checkpoint is keyed by its content.
    """
    path = Path(spec).expanduser()
    if not path.is_file():
        repo, sub = _split_hub(spec)
        if not sub:
            raise UserError(f"{spec!r}: no such file; a hub file is written 'owner/repo/file.pth'.")
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(repo, sub, revision=revision, local_files_only=offline()))
        except Exception as exc:  # noqa: BLE001
            raise _hub_error(spec, exc) from None
    return path, {"source": spec, "sha256": sha256_file(path)}

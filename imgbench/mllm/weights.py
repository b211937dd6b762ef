"""Where an MLLM's weights come from, resolved to something that can key a cache.

A hub id resolves to the snapshot actually served (its commit, read from the snapshot path); a
local folder to a sha256 over its weight files. Hashing a 26 GB folder takes a minute, so the
digest is cached per (path, size, mtime) under the user cache directory.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from imgbench.errors import MissingFiles, UserError
from imgbench.needs import Need, note
from imgbench.util.hashing import sha256_file
from imgbench.util.hub import offline, unreachable

logger = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pth", ".pt")


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


def _hub_error(spec: str, exc: BaseException) -> MissingFiles:
    how = "it is not in the local hub cache and downloads are off (IMGBENCH_OFFLINE/HF_HUB_OFFLINE)" if offline() \
        else f"it is not in the local hub cache and the download failed ({type(exc).__name__}: {exc})"
    repo, sub = "/".join(spec.split("/")[:2]), "/".join(spec.split("/")[2:])
    # A folder inside a repo is fetched with --include 'sub/*'; a file by its name.
    what = f" --include '{sub}/*'" if sub and "." not in Path(sub).name else (f" {sub}" if sub else "")
    return MissingFiles(f"{spec!r}: {how}. Download it on a connected machine with `hf download {repo}{what}` "
                     f"(huggingface_hub < 1.0: `huggingface-cli download {repo}{what}`), then copy the Hugging Face "
                     f"cache ($HF_HOME/hub) here, or pass a local path.")


def _fetch(spec: str, download: Callable[[bool], str]) -> str:
    """`download(local_files_only)` from the cache when offline or when the hub cannot be reached (one short
    TCP probe: huggingface_hub would retry a refused connection for ~25 s), else from the hub."""
    if offline():
        try:
            return download(True)
        except Exception as exc:  # noqa: BLE001 - hub errors of every kind become one actionable message
            raise _hub_error(spec, exc) from None
    if (error := unreachable()) is not None:
        try:
            path = download(True)
        except Exception:  # noqa: BLE001 - not cached either: the unreachable hub is the cause to report
            raise _hub_error(spec, error) from None
        logger.info("%s: the hub is unreachable (%s); using the cached copy", spec, error)
        return path
    try:
        return download(False)
    except Exception as exc:  # noqa: BLE001
        raise _hub_error(spec, exc) from None


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
        note(Need("local", "MLLM", name_or_path, where=str(path)))
        return str(path), {"path": str(path.resolve()), "digest": folder_digest(path)}
    repo, sub = _split_hub(name_or_path)
    from huggingface_hub import snapshot_download

    patterns = [f"{sub}/*"] if sub else ["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]
    note(Need("hub", "MLLM", repo, revision, tuple(patterns)))
    folder = _fetch(name_or_path, lambda local: snapshot_download(repo, revision=revision, local_files_only=local,
                                                                  allow_patterns=patterns))
    return str(Path(folder) / sub), {"hub_id": name_or_path, "revision": Path(folder).name}


def resolve_file(spec: str, revision: str | None = None, what: str = "checkpoint") -> tuple[Path, dict[str, Any]]:
    """(local file, identity facts) for a local file or 'owner/repo/path/in/repo' on the hub.

    The identity holds the file's sha256 either way: a checkpoint is keyed by its content.
    """
    path = Path(spec).expanduser()
    if not path.is_file():
        repo, sub = _split_hub(spec)
        if not sub:
            raise UserError(f"{spec!r}: no such file; a hub file is written 'owner/repo/file.pth'.")
        note(Need("hub", what, repo, revision, (sub,)))
        from huggingface_hub import hf_hub_download

        path = Path(_fetch(spec, lambda local: hf_hub_download(repo, sub, revision=revision,
                                                               local_files_only=local)))
    else:
        note(Need("local", what, spec, where=str(path)))
    return path, {"source": spec, "sha256": sha256_file(path)}


def read_config(folder: str | Path) -> dict[str, Any]:
    """A transformers model folder's config.json (here, not in hf.py, so the converter needs no import of hf)."""
    path = Path(folder) / "config.json"
    if not path.exists():
        raise UserError(f"{folder} has no config.json; it is not a transformers model folder.")
    return json.loads(path.read_text(encoding="utf-8"))

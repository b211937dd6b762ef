"""Finding scorer weights: the local Hugging Face cache first, the hub only when downloads are allowed.

Scorers must fail fast and say how to fix a missing checkpoint (eval_toolkits.md §(c) pain point 4:
HPSv2 and GenEval download at run time and hang or fail obscurely offline). So every lookup:
- honours `IMGBENCH_OFFLINE` / `HF_HUB_OFFLINE` (read at call time, not import time; imgbench.util.hub),
- tries the cache with `local_files_only=True` before touching the network,
- probes the hub with one short TCP connect, then downloads with a short timeout (proxy variables and
  `HF_ENDPOINT` are honoured),
- turns every failure into a `UserError` naming the hub id, the files and the command that gets them.

The resolved identity is the commit hash of the cached snapshot (or a sha256 of a local file), so
score caches are keyed by the weights actually used, never by a moving branch name.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from imgbench.errors import MissingFiles, UserError
from imgbench.needs import Need, note
from imgbench.util.hashing import sha256_file
from imgbench.util.hub import CONNECT_TIMEOUT_S, offline, unreachable

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Weights:
    """Where a checkpoint lives on disk and what identifies it in a score cache key."""

    path: Path
    """A snapshot folder (hub repos) or a single file."""
    repo: str
    """Hub id, or the local path the user gave."""
    revision: str
    """Resolved commit hash for hub files; 'sha256:<digest>' for a local file; 'local-folder' for a folder."""

    def identity(self) -> dict[str, str]:
        return {"repo": self.repo, "revision": self.revision}


def _commit_of(path: Path) -> str:
    parts = path.parts
    if "snapshots" in parts:
        return parts[parts.index("snapshots") + 1]
    return "unknown"


def how_to_get(repo: str, files: list[str], revision: str | None) -> str:
    rev = f" --revision {revision}" if revision else ""
    # One --include per pattern (hf takes a single pattern per flag); absent alternatives just match nothing.
    include = " ".join(f"--include '{f}'" for f in files)
    return (f"get it on a machine with access to huggingface.co: `hf download {repo} {include}{rev}`, "
            f"then copy the Hugging Face cache folder ($HF_HOME/hub, default ~/.cache/huggingface/hub) here "
            f"or point HF_HUB_CACHE at it")


def _fail(what: str, repo: str, files: list[str], revision: str | None,
          cause: BaseException | None) -> MissingFiles:
    state = ("downloads are disabled (IMGBENCH_OFFLINE / HF_HUB_OFFLINE)" if offline()
             else f"the download failed ({type(cause).__name__}: {str(cause).splitlines()[0][:200] if cause else ''})")
    return MissingFiles(f"{what}: weights {repo}{'@' + revision if revision else ''} are not in "
                     f"the local cache and {state}. To fix: {how_to_get(repo, files, revision)}.")


def local_file(path: str | Path, what: str) -> Weights:
    """A checkpoint file the user points at directly; identified by its sha256."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise UserError(f"{what}: checkpoint file {file} does not exist.")
    note(Need("local", what, str(file), where=str(file)))
    return Weights(path=file, repo=str(file), revision="sha256:" + sha256_file(file))


def hub_file(repo: str, filename: str, what: str, revision: str | None = None) -> Weights:
    """One file of a hub repo (e.g. HPSv2's `HPS_v2_compressed.pt`), cache first."""
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(repo, filename, revision=revision, local_files_only=True)
    except Exception:  # noqa: BLE001 — any miss falls through to the download (or the error)
        path = None
    if path is None:
        if offline():
            raise _fail(what, repo, [filename], revision, None)
        logger.info("downloading %s/%s", repo, filename)
        if (error := unreachable()) is not None:
            raise _fail(what, repo, [filename], revision, error)
        try:
            path = hf_hub_download(repo, filename, revision=revision, etag_timeout=CONNECT_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 — network, auth, missing file: all need the same fix
            raise _fail(what, repo, [filename], revision, exc) from None
    note(Need("hub", what, repo, revision, (filename,)))
    return Weights(path=Path(path), repo=repo, revision=_commit_of(Path(path)))


def hub_snapshot(repo: str, what: str, files: list[str], weights: tuple[str, ...] = (),
                 revision: str | None = None) -> Weights:
    """Files of a hub repo (configs, tokenizer: glob patterns) plus the first weight pattern of `weights` it has.

    Repos differ in which weight format they ship (model.safetensors, pytorch_model.bin, sharded
    *.safetensors), so weight patterns are alternatives tried in order, and only one format is downloaded.
    """
    local = Path(repo).expanduser()
    if local.is_dir():
        if weights and not any(any(local.glob(w)) for w in weights):
            raise UserError(f"{what}: folder {local} has none of the weight files {', '.join(weights)}.")
        note(Need("local", what, str(local), where=str(local)))
        return Weights(path=local, repo=str(local), revision="local-folder")
    if repo.startswith(("/", ".", "~")) or repo.count("/") != 1:
        raise UserError(f"{what}: {repo} is neither a local folder nor a hub id like 'owner/name'.")
    from huggingface_hub import snapshot_download

    def complete(path: str | None) -> bool:
        return path is not None and (not weights or any(any(Path(path).glob(w)) for w in weights))

    try:
        path: str | None = snapshot_download(repo, revision=revision, allow_patterns=[*files, *weights],
                                             local_files_only=True)
    except Exception:  # noqa: BLE001 — any miss falls through to the download (or the error)
        path = None
    if not complete(path):
        wanted = [*files, *weights]
        if offline():
            raise _fail(what, repo, wanted, revision, None)
        if (error := unreachable()) is not None:
            raise _fail(what, repo, wanted, revision, error)
        logger.info("downloading %s (%s)", repo, ", ".join(wanted))
        for weight in weights or ("",):
            try:
                path = snapshot_download(repo, revision=revision, allow_patterns=[*files, weight] if weight else files,
                                         etag_timeout=CONNECT_TIMEOUT_S)
            except Exception as exc:  # noqa: BLE001 — network, auth, missing repo: all need the same fix
                raise _fail(what, repo, wanted, revision, exc) from None
            if complete(path):
                break
        if not complete(path):
            raise UserError(f"{what}: hub repo {repo} has none of the weight files {', '.join(weights)}.")
    assert path is not None
    found = [w for w in weights if any(Path(path).glob(w))][:1]  # the one weight format this snapshot has
    note(Need("hub", what, repo, revision, tuple(f for f in files if any(Path(path).glob(f))) + tuple(found)))
    return Weights(path=Path(path), repo=repo, revision=_commit_of(Path(path)))

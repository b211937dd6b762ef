"""Fetch and verify everything one run reads, so that the same run then works with IMGBENCH_OFFLINE=1.

The fetch list is not declared here. The run is planned with `imgbench.runner.prepare` (the code `imgbench run`
uses) inside `imgbench.needs.recording()`, so the resolvers that would name a missing file in a `MissingFiles`
error record what they need: model weight sources, scorer files, MLLM and aligner files, suite folders.
Planning online already fetches suites, scorer and MLLM files (their resolvers download on first use); model
weights load lazily, so every recorded hub repository is then fetched here with the files its loader reads
(a diffusers pipeline: diffusers' own list), each file is checked against the content hash the hub served
(the cache's blob name) and a damaged one is fetched again, and finally the run is planned once more with
downloads off, which must find everything.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from imgbench.errors import MissingFiles, UserError
from imgbench.needs import Need, recording
from imgbench.runner import RunRequest, prepare
from imgbench.util.hashing import sha256_file
from imgbench.util.hub import offline

logger = logging.getLogger(__name__)

WEIGHT_FORMATS = (".safetensors", ".bin")
"""A folder's weights in the first of these formats it has (transformers / diffusers prefer safetensors)."""
SMALL_FILES = (".json", ".txt", ".model")
"""Configs, tokenizer vocabularies and SentencePiece models, fetched with a folder's weights."""


@dataclass
class Fetched:
    """What `download` did for one need, for the summary."""

    need: Need
    status: str
    """'fetched' (some files new), 'present' (all were here), 'repaired' (damaged files fetched again), 'local'."""
    commit: str | None = None
    where: str = ""
    files: list[str] = field(default_factory=list)
    new: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    size: int = 0


def download(request: RunRequest, score: bool = True, say: Callable[[str], None] = logger.info) -> list[Fetched]:
    """Fetch and verify every file the run of `request` reads; raise MissingFiles naming what could not be had."""
    if offline():
        raise UserError("imgbench download fetches from the hub and the suites' sources, but downloads are off "
                        "(IMGBENCH_OFFLINE / HF_HUB_OFFLINE is set); run it without them, on a machine that can "
                        "reach huggingface.co (or HF_ENDPOINT), then copy the caches to the offline one.")
    from huggingface_hub import constants

    blobs = {constants.HF_HUB_CACHE: _blobs(constants.HF_HUB_CACHE)}  # what was here before: "new" is the rest
    with recording() as needs:
        prepare(request, score)  # online: suites, scorer and MLLM files arrive here (their resolvers fetch them)
    done: list[Fetched] = []
    failed: list[MissingFiles] = []
    for need in needs:
        try:
            cache = need.cache_dir or constants.HF_HUB_CACHE
            done.append(fetch(need, say, blobs.setdefault(cache, _blobs(cache))))
        except MissingFiles as exc:
            failed.append(exc)
    if failed:
        from imgbench.errors import missing_together

        raise missing_together(failed)
    with _downloads_off():  # the proof: the same run, planned offline, finds everything
        try:
            prepare(request, score)
        except MissingFiles as exc:
            raise MissingFiles(f"after downloading, the run still lacks files when offline: {exc}") from None
    return done


@contextlib.contextmanager
def _downloads_off() -> Iterator[None]:
    old = os.environ.get("IMGBENCH_OFFLINE")
    os.environ["IMGBENCH_OFFLINE"] = "1"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("IMGBENCH_OFFLINE", None)
        else:
            os.environ["IMGBENCH_OFFLINE"] = old


def _blobs(cache: str) -> set[str]:
    """The content files of a Hugging Face cache (`models--*/blobs/*`), by real path."""
    return {os.path.realpath(p) for p in Path(cache).glob("models--*/blobs/*")}


def fetch(need: Need, say: Callable[[str], None], known: set[str]) -> Fetched:
    """One need: local things are only reported; hub repos are fetched and verified; suites were fetched by
    planning (and their content checksum verified by the task loader)."""
    if need.kind == "local":
        return Fetched(need, "local", where=need.where or need.source, size=_size_of(Path(need.where or need.source)))
    if need.kind == "suite":
        folder, _, origin = (need.where or "").rpartition(" (")
        files = [f for f in need.files if not f.endswith("/")]
        return Fetched(need, "fetched" if origin.startswith("downloaded") else "present", where=folder,
                       files=list(need.files), size=sum(_size_of(Path(folder) / f) for f in files))
    return _fetch_hub(need, say, known)


def loader_files(listing: list[str], wanted: tuple[str, ...]) -> list[str]:
    """The repo files a loader reads: named files as they are; a folder ('unet/', '' for the root) as its
    configs and tokenizer files plus its weights in one format, without variants (what `from_pretrained` reads
    when no variant is asked for)."""
    chosen: list[str] = []
    for entry in wanted:
        if any(c in entry for c in "*?["):  # a glob pattern (MLLM snapshots): whatever the repo has that matches
            chosen += fnmatch.filter(listing, entry)
            continue
        if entry and not entry.endswith("/"):
            chosen.append(entry)
            continue
        direct = [f for f in listing if f.startswith(entry) and "/" not in f[len(entry):]]
        chosen += [f for f in direct if f.endswith(SMALL_FILES)]
        for suffix in WEIGHT_FORMATS:
            weights = [f for f in direct if f.endswith(suffix) and "." not in Path(f).name[:-len(suffix)]]
            if weights:
                chosen += weights
                break
    return list(dict.fromkeys(chosen))


def _snapshot(need: Need, commit: str) -> Path:
    from huggingface_hub import constants
    from huggingface_hub.file_download import repo_folder_name

    cache = Path(need.cache_dir or constants.HF_HUB_CACHE)
    return cache / repo_folder_name(repo_id=need.source, repo_type="model") / "snapshots" / commit


def _present(snapshot: Path) -> set[str]:
    """Files of a snapshot whose content is on disk (a pointer to a deleted blob does not count)."""
    if not snapshot.is_dir():
        return set()
    return {p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()}


def _fetch_hub(need: Need, say: Callable[[str], None], known: set[str]) -> Fetched:
    """Fetch the files of one hub need, check each against the hub's hash, refetch damaged ones; `known`:
    the cache's blobs before this invocation (a file is new when its blob was not among them)."""
    from huggingface_hub import HfApi, hf_hub_download, snapshot_download

    rev = f"@{need.revision}" if need.revision else ""
    try:
        info = HfApi().model_info(need.source, revision=need.revision)
    except Exception as exc:  # noqa: BLE001 - missing repo, gated, network: the user fixes each the same way
        raise MissingFiles(f"{need.role}: cannot fetch {need.source}{rev} from the hub ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:200]}); check the id and revision, `hf auth login` for "
                           f"gated repos, and the network.") from None
    commit = str(info.sha)
    snapshot = _snapshot(need, commit)
    listing = [s.rfilename for s in info.siblings or []]
    try:
        if need.kind == "pipeline":
            say(f"fetching {need.role} {need.source}{rev} (commit {commit[:12]}): what diffusers loads")
            from diffusers import DiffusionPipeline

            for variant in need.variants:
                try:
                    DiffusionPipeline.download(need.source, revision=need.revision, cache_dir=need.cache_dir,
                                               variant=variant, **dict.fromkeys(need.without))
                except ValueError as exc:  # a repo without the variant: the loader then reads the plain files
                    if variant is None or None not in need.variants:
                        raise
                    say(f"  {need.source} has no {variant} variant ({str(exc).strip()}); the plain files serve "
                        f"every dtype")
            files = sorted(_present(snapshot))
        else:
            files = loader_files(listing, need.files)
            absent = [f for f in files if f not in listing]
            if absent or not files:
                raise MissingFiles(f"{need.role}: the hub repo {need.source}{rev} (commit {commit[:12]}) has no "
                                   f"{', '.join(absent) or ' '.join(need.files)}; check the model or method "
                                   f"arguments that name it.")
            say(f"fetching {need.role} {need.source}{rev} (commit {commit[:12]}): {len(files)} files")
            snapshot_download(need.source, revision=need.revision, allow_patterns=files, cache_dir=need.cache_dir)
    except MissingFiles:
        raise
    except Exception as exc:  # noqa: BLE001
        raise MissingFiles(f"{need.role}: fetching {need.source}{rev} failed ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:200]}).") from None
    damaged = [f for f in files if not _intact(snapshot / f)]
    for name in damaged:
        say(f"  {need.source}/{name}: content does not match the hub's hash; fetching it again")
        _forget(snapshot / name)
        hf_hub_download(need.source, name, revision=need.revision, cache_dir=need.cache_dir, force_download=True)
    still = [f for f in damaged if not _intact(snapshot / f)]
    if still:
        raise MissingFiles(f"{need.role}: {need.source} files {', '.join(still)} do not match the hub's hash even "
                           f"after fetching them again (a proxy or disk altering them?).")
    new = sorted(f for f in files if f in damaged or os.path.realpath(snapshot / f) not in known)
    for name in new:
        say(f"  + {need.source}/{name} ({human_size(_size_of(snapshot / name))})")
    status = "repaired" if damaged else "fetched" if new else "present"
    return Fetched(need, status, commit=commit, where=str(snapshot), files=files, new=new, repaired=damaged,
                   size=sum(_size_of(snapshot / f) for f in files))


def _intact(path: Path) -> bool:
    """Whether a cached file hashes to its blob's name: the sha256 of LFS files, the git blob sha1 of others.

    A cache without symlinks (blob names unknown) cannot be checked here and counts as intact.
    """
    if not path.is_file():
        return False
    blob = Path(os.path.realpath(path)).name
    if len(blob) == 64:
        return sha256_file(path) == blob
    if len(blob) == 40:
        digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())  # noqa: S324 - git's object id, not security
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        return digest.hexdigest() == blob
    return True


def _forget(path: Path) -> None:
    """Remove a damaged cached file: its blob and the snapshot's pointer to it."""
    blob = Path(os.path.realpath(path))
    for target in (blob, path):
        with contextlib.suppress(FileNotFoundError):
            target.unlink()


def _size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return 0


def human_size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return f"{n} B"

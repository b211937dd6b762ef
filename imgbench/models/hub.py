"""Where a model's weights come from, and which exact weights those are.

A `WeightSource` is one hub repository (plus optional subfolder) or a local folder. `resolve()`
answers "which bytes will be loaded" without loading them, because that answer keys the run
cache (DESIGN §4): for the hub, the commit actually served (asked from the hub with a short
timeout, or read from the local cache when offline or unreachable); for a local folder, a
digest of its files. Anything missing becomes a `UserError` that names the repository and the
two fixes (pre-download, or point at a local folder) in well under a second, before torch is
ever imported.

Only `huggingface_hub` is imported here (light); diffusers and torch stay out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgbench.errors import MissingFiles, UserError
from imgbench.needs import Need, note
from imgbench.util.hub import offline, unreachable

logger = logging.getLogger(__name__)

#: Seconds to wait for the hub's answer on which commit a revision is; downloads use the hub's own timeouts.
HUB_TIMEOUT_S = float(os.environ.get("IMGBENCH_HUB_TIMEOUT", "4"))
_SKIP_DIRS = {".git", ".cache", ".huggingface"}


@dataclass(frozen=True)
class WeightSource:
    """One set of weights: a hub repo at a revision, or a local folder laid out like that repo."""

    role: str
    """What these weights are for ('base pipeline', 'UNet', 'IP-Adapter'), named in error messages."""
    repo_id: str | None = None
    revision: str | None = None
    """A commit, branch or tag; None means unpinned (the hub's main), recorded as served."""
    local_path: str | None = None
    """A local folder that replaces the hub repo (--model-path or a *_path model argument)."""
    probe: str = "model_index.json"
    """A small file inside the repo that must exist; its snapshot folder names the served commit."""
    flag: str = "--model-path"
    """The option that points this source at a local folder (named in the fix-it message)."""
    cache_dir: str | None = None
    files: tuple[str, ...] | None = None
    """What the loader reads from the repo, for `imgbench download`: files, or folders
    ending in '/' (their configs and one weight format). None: the probe's folder (for a pipeline, whose probe
    is model_index.json, diffusers' own list of the files its loader reads)."""
    variants: tuple[str | None, ...] = (None,)
    """Weight variants the pipeline loader may read: ('fp16', None) when the device, hence the dtype, is not
    known yet; only for `imgbench download` (the identity records the variant the run used)."""
    without: tuple[str, ...] = ()
    """Components of the pipeline loaded from other sources (a swapped 'unet', 'vae'): `imgbench download` skips
    them."""

    def need(self) -> Need:
        """This source as an entry of the run's fetch list (imgbench.needs)."""
        if self.local_path:
            return Need("local", self.role, self.local_path, where=str(Path(self.local_path).expanduser()))
        parent = Path(self.probe).parent.as_posix()
        folder = "" if parent == "." else parent
        pipeline = self.probe == "model_index.json" and self.files is None
        files = self.files if self.files is not None else (f"{folder}/" if folder else "",)
        return Need("pipeline" if pipeline else "hub", self.role, str(self.repo_id), self.revision,
                    () if pipeline else files, self.cache_dir, self.variants if pipeline else (None,),
                    without=self.without if pipeline else ())

    def declared(self) -> dict[str, Any]:
        """What the user asked for, without touching the hub (for sources resolved on first use)."""
        if self.local_path:
            return {"path_digest": folder_digest(self.local_path, self.role, self.flag)}
        return {"hub_id": self.repo_id, "revision": self.revision or "unpinned"}

    def resolve(self) -> ResolvedSource:
        """The exact weights: a local folder's digest, or the hub commit that serves `revision`."""
        if self.local_path:
            folder = Path(self.local_path).expanduser()
            if not (folder / self.probe).is_file():
                like = f"the hub repo {self.repo_id}" if self.repo_id else "its hub repo"
                raise UserError(f"{flag_with(self.flag, folder)}: expected the {self.role} laid out like {like} "
                                f"(with {self.probe}), but {folder / self.probe} does not exist.")
            return ResolvedSource(self, location=str(folder), commit=None,
                                  digest=folder_digest(folder, self.role, self.flag), local_only=True)
        if not self.repo_id:
            raise UserError(f"no weights given for the {self.role}: set a hub id or {self.flag_usage()}.")
        if offline():
            return self._from_cache(reason="offline mode is on (IMGBENCH_OFFLINE / HF_HUB_OFFLINE)")
        if (error := unreachable()) is not None:  # fail (or fall back) in seconds, not after the hub's retries
            return self._from_cache(reason=f"the hub is unreachable ({error})")
        from huggingface_hub import HfApi
        from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError

        try:
            info = HfApi().model_info(self.repo_id, revision=self.revision, timeout=HUB_TIMEOUT_S)
        except RevisionNotFoundError:
            raise UserError(f"the hub repository {self.repo_id} ({self.role}) has no revision "
                            f"{self.revision!r}; fix the model's revision.") from None
        except RepositoryNotFoundError:
            raise UserError(f"the hub repository {self.repo_id} ({self.role}) does not exist or needs a login "
                            f"(`hf auth login`).") from None
        except HfHubHTTPError as exc:
            return self._from_cache(reason=f"the hub answered {exc.__class__.__name__}: {exc}")
        except Exception as exc:  # noqa: BLE001 - connection refused, DNS, proxy, timeout: all mean "unreachable"
            return self._from_cache(reason=f"the hub is unreachable ({type(exc).__name__}: {exc})")
        return ResolvedSource(self, location=self.repo_id, commit=info.sha, digest=None, local_only=False)

    def _from_cache(self, reason: str) -> ResolvedSource:
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(self.repo_id, self.probe, cache_dir=self.cache_dir, revision=self.revision)
        if not isinstance(path, str):
            raise MissingWeights(self, reason)
        commit = snapshot_commit(path)
        logger.info("%s: using the cached snapshot %s of %s (%s)", self.role, commit, self.repo_id, reason)
        return ResolvedSource(self, location=self.repo_id, commit=commit, digest=None, local_only=True)

    def in_cache(self) -> bool:
        """Whether the hub files are in the local cache (no network): how lazy sources are checked up front."""
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(self.repo_id, self.probe, cache_dir=self.cache_dir,
                                                 revision=self.revision), str)

    def flag_usage(self) -> str:
        """How to point this source at a folder: '--model-path DIR', '--model-arg unet_path=DIR'."""
        return self.flag if "=" in self.flag else f"{self.flag} DIR"

    def download_command(self) -> str:
        return f"hf download {self.repo_id}" + (f" --revision {self.revision}" if self.revision else "")

    def missing_message(self, reason: str) -> str:
        from huggingface_hub import constants

        revision = f" --revision {self.revision}" if self.revision else ""
        cache = self.cache_dir or constants.HF_HUB_CACHE
        return (f"the {self.role} weights {self.repo_id} (revision {self.revision or 'unpinned: main'}) are not in "
                f"the local Hugging Face cache ({cache}) and cannot be downloaded: {reason}. Fix: pre-download them "
                f"where the hub is reachable with `hf download {self.repo_id}{revision}` (huggingface_hub < 1.0: "
                f"`huggingface-cli download {self.repo_id}{revision}`) and copy the cache here (HF_HOME / "
                f"HF_HUB_CACHE), or pass {self.flag_usage()} with a local folder laid out like the repo.")


class MissingWeights(MissingFiles):
    """A hub source that is neither in the local cache nor downloadable (collected by `resolve_all`)."""

    def __init__(self, source: WeightSource, reason: str) -> None:
        super().__init__(source.missing_message(reason))
        self.source, self.reason = source, reason


def resolve_all(sources: dict[str, WeightSource],
                lazy: dict[str, WeightSource] | None = None) -> dict[str, ResolvedSource]:
    """Resolve every source, and report every missing one in ONE error with each download command.

    Stopping at the first miss made `sdxl-dpo` users download the SDXL base only to meet a second
    error for the UNet. When something is missing anyway, hub sources loaded later (`lazy`: the
    IP-Adapter) are checked in the cache too, so one round of downloads is enough.
    """
    for source in [*sources.values(), *(lazy or {}).values()]:
        if source.repo_id or source.local_path:
            note(source.need())
    resolved: dict[str, ResolvedSource] = {}
    missing: list[MissingWeights] = []
    errors: list[UserError] = []
    for role, source in sources.items():
        try:
            resolved[role] = source.resolve()
        except MissingWeights as exc:
            missing.append(exc)
        except UserError as exc:
            errors.append(exc)
    if not missing and not errors:
        return resolved
    later = [s for s in (lazy or {}).values() if missing and s.repo_id and not s.local_path and not s.in_cache()]
    if len(missing) + len(errors) + len(later) == 1:
        raise (missing or errors)[0]
    parts = [missing_weights_message(missing, later)] if missing else []
    raise (MissingFiles if missing else UserError)(" Also: ".join([*parts, *(str(e) for e in errors)]))


def missing_weights_message(missing: list[MissingWeights], later: list[WeightSource]) -> str:
    """Every missing source with its `hf download` command (and the *_path alternative)."""
    from huggingface_hub import constants

    caches = sorted({s.cache_dir or constants.HF_HUB_CACHE for s in [*(m.source for m in missing), *later]})
    reasons = "; ".join(dict.fromkeys(m.reason for m in missing))
    lines = [f"  `{m.source.download_command()}`  ({m.source.role}; or {m.source.flag_usage()} with a local folder)"
             for m in missing]
    lines += [f"  `{s.download_command()}`  ({s.role}, loaded for image tokens, e.g. method img; "
              f"or {s.flag_usage()})" for s in later]
    return (f"{len(lines)} sets of weights of this model are not in the local Hugging Face cache "
            f"({', '.join(caches)}) and cannot be downloaded: {reasons}. Fix: pre-download all of them where the "
            f"hub is reachable and copy the cache here (HF_HOME / HF_HUB_CACHE):\n" + "\n".join(lines)
            + "\n(huggingface_hub < 1.0: `huggingface-cli download` with the same arguments.)")


@dataclass(frozen=True)
class ResolvedSource:
    """A source pinned to exact bytes: `location` is what `from_pretrained` gets."""

    source: WeightSource
    location: str
    commit: str | None
    digest: str | None
    local_only: bool
    """Load without network: a local folder, offline mode, or a hub that could not be reached."""

    def identity(self) -> dict[str, Any]:
        if self.digest:
            return {"path_digest": self.digest}
        return {"hub_id": self.source.repo_id, "revision": self.commit,
                "requested_revision": self.source.revision or "unpinned"}

    def load_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for diffusers / transformers `from_pretrained` pinned to these bytes."""
        if self.digest:
            return {"local_files_only": True}
        return {"revision": self.commit, "local_files_only": self.local_only or offline(),
                "cache_dir": self.source.cache_dir}


def flag_with(flag: str, value: str | Path) -> str:
    """The option as the user wrote it: '--model-path /x', '--model-arg unet_path=/x' (flags may end in '=DIR')."""
    return flag.replace("=DIR", f"={value}") if flag.endswith("=DIR") else f"{flag} {value}"


def snapshot_commit(path: str | Path) -> str:
    """The commit of a file inside a hub-cache snapshot (…/snapshots/<commit>/…)."""
    parts = Path(path).parts
    if "snapshots" not in parts or parts.index("snapshots") + 1 >= len(parts):
        raise UserError(f"{path} is not inside a Hugging Face cache snapshot folder.")
    return parts[parts.index("snapshots") + 1]


def _digest_cache_path() -> Path:
    import platformdirs

    return Path(os.environ.get("IMGBENCH_CACHE_DIR") or platformdirs.user_cache_dir("imgbench")) / "file-digests.json"


def folder_digest(folder: str | Path, role: str = "weights", flag: str = "--model-path") -> str:
    """sha256 over (relative path, content sha256) of every file in a folder.

    Hashing gigabytes takes tens of seconds, so per-file digests are cached, keyed by the
    resolved path, size and modification time (a changed file is hashed again).
    """
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"{flag_with(flag, folder)}: not a folder (expected the {role} laid out like its hub repo).")
    cache_file = _digest_cache_path()
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    entries, changed = [], False
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not _SKIP_DIRS & set(p.relative_to(folder).parts))
    for path in files:
        real = path.resolve()
        stat = real.stat()
        key = f"{real}|{stat.st_size}|{stat.st_mtime_ns}"
        if key not in cache:
            from imgbench.util.hashing import sha256_file

            cache[key] = sha256_file(real)
            changed = True
        entries.append(f"{path.relative_to(folder).as_posix()}:{cache[key]}")
    if not entries:
        raise UserError(f"{flag_with(flag, folder)}: the folder is empty (expected the {role}).")
    if changed:
        try:
            cache_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_file.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(cache))
            tmp.replace(cache_file)
        except OSError as exc:  # a read-only home only costs re-hashing next time
            logger.debug("cannot write the digest cache %s: %s", cache_file, exc)
    return hashlib.sha256("\n".join(entries).encode()).hexdigest()

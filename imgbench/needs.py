"""What a run reads from outside the repository, as its own resolvers find it: the list `imgbench download` fetches.

The resolvers that raise `MissingFiles` when something is absent (model weight sources, scorer hub files, MLLM
and aligner files, suite folders) also `note()` what they resolve. Nothing is recorded unless a `recording()`
block is active, so a plain run pays nothing; `imgbench download` plans the run inside one and gets every
repository, revision, file pattern and suite folder the run needs, without a second list of model ids that
could drift from the run's.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

KINDS = ("pipeline", "hub", "suite", "local")


@dataclass(frozen=True)
class Need:
    """One thing a run reads: files of a hub repo, a diffusers pipeline repo, a suite folder, or a local path."""

    kind: str
    """'pipeline' (a diffusers pipeline repo: diffusers decides its files), 'hub' (the files or folders in
    `files` of a hub repo), 'suite' (a published suite's files), 'local' (a local path: nothing to fetch)."""
    role: str
    """Who needs it, for the summary ('base pipeline', "scorer 'clipscore'", "task 'drawbench'")."""
    source: str
    """Hub id, suite URL or local path."""
    revision: str | None = None
    """The requested revision (None: the hub's main)."""
    files: tuple[str, ...] = ()
    """Hub files, glob patterns or folders ('unet/': its configs and one weight format); suite file names."""
    cache_dir: str | None = None
    variants: tuple[str | None, ...] = (None,)
    """Weight variants a pipeline's loader may read ('fp16' on an accelerator, None for the plain files)."""
    without: tuple[str, ...] = ()
    """Pipeline components loaded from elsewhere (a swapped UNet or VAE): not fetched."""
    where: str | None = None
    """The local folder (suites, local paths), when known."""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"Need.kind must be one of {KINDS}, got {self.kind!r}")


_RECORDING: ContextVar[list[Need] | None] = ContextVar("imgbench_needs", default=None)


@contextlib.contextmanager
def recording() -> Iterator[list[Need]]:
    """Collect every `note()` made inside the block, in order, without duplicates."""
    needs: list[Need] = []
    token = _RECORDING.set(needs)
    try:
        yield needs
    finally:
        _RECORDING.reset(token)


def note(need: Need) -> None:
    """Record `need` if a `recording()` block is active (a no-op otherwise)."""
    needs = _RECORDING.get()
    if needs is not None and need not in needs:
        needs.append(need)

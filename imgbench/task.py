"""Task controller: a TaskSpec's prompts, resolved, verified and subset.

Kept apart from the spec (data) so that listing tasks never reads prompt files.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgbench import catalog
from imgbench.api.records import Prompt
from imgbench.api.registry import import_target
from imgbench.api.specs import PromptSource, TaskSpec
from imgbench.errors import UserError
from imgbench.prompts import content_sha256, read_prompt_file
from imgbench.util.text import check_name, slugify
from imgbench.util.yamlfile import load_yaml_mapping

logger = logging.getLogger(__name__)


@dataclass
class Task:
    """A task with its prompts loaded (all of them, before any --tags / --limit subset)."""

    spec: TaskSpec
    prompts: list[Prompt]
    checksum: str
    origin: str = ""
    """Where the prompts were read from (a file, or a suite folder and whether data dir, cache or download)."""

    def identity(self) -> dict[str, Any]:
        """What keys the run cache: name, version and the content checksum of the prompts."""
        return {"name": self.spec.name, "version": self.spec.version, "content_sha256": self.checksum}

    def select(self, tags: tuple[str, ...] = (), limit: int | None = None, offset: int = 0) -> list[Prompt]:
        """Prompts carrying any of `tags` (after slug normalisation), less the first `offset`, then the first
        `limit` (offset + limit walk a suite in chunks, e.g. to give each chunk seeds of its own)."""
        chosen = self.prompts
        if tags:
            known = {t for p in self.prompts for t in p.tags}
            unknown = [t for t in tags if t not in known]
            if unknown:
                raise UserError(f"task {self.spec.name!r} has no tag {', '.join(map(repr, unknown))}; "
                                f"its tags are: {', '.join(sorted(known)) or '(none)'}.")
            chosen = [p for p in chosen if set(p.tags) & set(tags)]
        if offset:
            if offset < 0:
                raise UserError(f"--offset must be at least 0, got {offset}.")
            if offset >= len(chosen):
                raise UserError(f"--offset {offset} skips all {len(chosen)} selected prompt(s) of task "
                                f"{self.spec.name!r}; give an offset below {len(chosen)}.")
            chosen = chosen[offset:]
        if limit is not None:
            if limit < 1:
                raise UserError(f"--limit must be at least 1, got {limit}.")
            chosen = chosen[:limit]
        return chosen


def _load_prompts(spec: TaskSpec) -> tuple[list[Prompt], str]:
    """The task's full prompt list (before `select_tags`) and where it was read from."""
    source = spec.prompts
    base = spec.yaml_path.parent if spec.yaml_path else Path.cwd()
    if source.files:
        from imgbench.suites.fetch import locate

        located = locate(remote_of(spec))
        if source.loader:
            loader = import_target(source.loader, what=f"prompt loader of task {spec.name!r}")
            return loader(source, located.folder), located.describe()
        if len(source.files) != 1:
            raise UserError(f"task {spec.name!r} ({spec.yaml_path}) lists {len(source.files)} files but no "
                            f"prompts.loader to combine them.")
        return read_prompt_file(located.folder / source.files[0], source), located.describe()
    if source.loader:
        loader = import_target(source.loader, what=f"prompt loader of task {spec.name!r}")
        return loader(source, base), str(base)
    if source.path:
        return read_prompt_file(base / source.path, source), str(base / source.path)
    raise UserError(f"task {spec.name!r} ({spec.yaml_path}) does not say where its prompts are: "
                    f"set prompts.path, prompts.files or prompts.loader.")


def remote_of(spec: TaskSpec):  # -> imgbench.suites.fetch.Remote (import kept lazy)
    """The published files of a task whose prompts block names `files:` (data_dir defaults to the task name)."""
    from imgbench.suites.fetch import Remote

    source = spec.prompts
    return Remote(what=f"task {spec.name!r}", data_dir=source.data_dir or spec.name, files=source.files,
                  url=source.url)


def load_task(spec: TaskSpec) -> Task:
    """Load and verify a task's prompts; a checksum mismatch is an error, never a warning.

    The pinned checksum covers the whole published list, so it is checked before `select_tags`
    takes a subset; the task's own checksum (its run identity) is that of the prompts it keeps.
    """
    prompts, origin = _load_prompts(spec)
    expected = spec.prompts.content_sha256
    if expected:
        seen = content_sha256(prompts)
        if expected != seen:
            raise UserError(f"task {spec.name!r}: the prompts read from {origin} have content checksum {seen}, "
                            f"but the task YAML ({spec.yaml_path}) pins {expected}. The data differs from the "
                            f"published list (a changed, missing or extra prompt); replace it with an unmodified "
                            f"copy (delete a cached copy to download it again).")
    elif spec.size is not None and spec.size != len(prompts):
        # No reference content to verify against: at least say when the count is not the published one.
        logger.warning("task %r: %d prompts read from %s, but the published suite has %d; the copy may be "
                       "incomplete or a different version (the run records the checksum it saw).",
                       spec.name, len(prompts), origin, spec.size)
        origin = f"{origin} (size {len(prompts)}, published {spec.size})"
    for prompt in prompts:
        if prompt.id in (".", "..") or "/" in prompt.id or "\\" in prompt.id or "\0" in prompt.id:
            raise UserError(f"task {spec.name!r}: prompt id {prompt.id!r} cannot name a folder (images/<id>/); "
                            f"ids must not contain '/' or '\\' or be '.' / '..'.")
    if spec.select_tags:
        wanted = {slugify(t) for t in spec.select_tags}
        prompts = [p for p in prompts if set(p.tags) & wanted]
        if not prompts:
            raise UserError(f"task {spec.name!r}: select_tags {list(spec.select_tags)} match no prompt.")
    return Task(spec=spec, prompts=prompts, checksum=content_sha256(prompts), origin=origin)


def task_from_prompt_file(path: str | Path, text_column: str = "text", id_column: str | None = None,
                          tag_columns: tuple[str, ...] = ()) -> TaskSpec:
    """An ad-hoc task for a user's prompt file (`--prompts FILE`): named after the file."""
    path = Path(path).resolve()
    check_name(f"prompts-{path.stem}", f"--prompts {path.name}: the task name it gives")
    source = PromptSource(path=str(path), text_column=text_column, id_column=id_column, tag_columns=tag_columns)
    return TaskSpec(name=f"prompts-{path.stem}", description=f"prompts from {path}", prompts=source,
                    yaml_path=path)


def resolve_task(name: str | None, prompts_file: str | None = None, **prompt_options: Any) -> TaskSpec:
    """The task named on the command line, or an ad-hoc one from --prompts (not both)."""
    if name and prompts_file:
        raise UserError("give either --task or --prompts, not both.")
    if prompts_file:
        return task_from_prompt_file(prompts_file, **prompt_options)
    if not name:
        raise UserError("no task given: use --task NAME (see `imgbench ls tasks`) or --prompts FILE.")
    if name.endswith((".yaml", ".yml")):
        return TaskSpec.from_yaml(load_yaml_mapping(name))
    return catalog.tasks().get(name).spec


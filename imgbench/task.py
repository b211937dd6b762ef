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
from imgbench.util.yamlfile import load_yaml_mapping

logger = logging.getLogger(__name__)


@dataclass
class Task:
    """A task with its prompts loaded (all of them, before any --tags / --limit subset)."""

    spec: TaskSpec
    prompts: list[Prompt]
    checksum: str

    def identity(self) -> dict[str, Any]:
        """What keys the run cache: name, version and the content checksum of the prompts."""
        return {"name": self.spec.name, "version": self.spec.version, "content_sha256": self.checksum}

    def select(self, tags: tuple[str, ...] = (), limit: int | None = None) -> list[Prompt]:
        """Prompts carrying any of `tags` (after slug normalisation), then the first `limit`."""
        chosen = self.prompts
        if tags:
            known = {t for p in self.prompts for t in p.tags}
            unknown = [t for t in tags if t not in known]
            if unknown:
                raise UserError(f"task {self.spec.name!r} has no tag {', '.join(map(repr, unknown))}; "
                                f"its tags are: {', '.join(sorted(known)) or '(none)'}.")
            chosen = [p for p in chosen if set(p.tags) & set(tags)]
        if limit is not None:
            if limit < 1:
                raise UserError(f"--limit must be at least 1, got {limit}.")
            chosen = chosen[:limit]
        return chosen


def _load_prompts(spec: TaskSpec) -> list[Prompt]:
    source = spec.prompts
    base = spec.yaml_path.parent if spec.yaml_path else Path.cwd()
    if source.loader:
        loader = import_target(source.loader, what=f"prompt loader of task {spec.name!r}")
        return loader(source, base)
    if source.path:
        return read_prompt_file(base / source.path, source)
    raise UserError(f"task {spec.name!r} ({spec.yaml_path}) does not say where its prompts are: "
                    f"set prompts.path or prompts.loader.")


def load_task(spec: TaskSpec) -> Task:
    """Load and verify a task's prompts; a checksum mismatch is an error, never a warning."""
    prompts = _load_prompts(spec)
    if spec.select_tags:
        prompts = [p for p in prompts if set(p.tags) & set(spec.select_tags)]
        if not prompts:
            raise UserError(f"task {spec.name!r}: select_tags {list(spec.select_tags)} match no prompt.")
    checksum = content_sha256(prompts)
    expected = spec.prompts.content_sha256
    if expected and expected != checksum:
        raise UserError(f"task {spec.name!r}: the prompts' content checksum is {checksum}, but the task YAML "
                        f"({spec.yaml_path}) pins {expected}. The prompt data differs from the published list; "
                        f"re-download it or point IMGBENCH_DATA_DIR at an unmodified copy.")
    return Task(spec=spec, prompts=prompts, checksum=checksum)


def task_from_prompt_file(path: str | Path, text_column: str = "text", id_column: str | None = None,
                          tag_columns: tuple[str, ...] = ()) -> TaskSpec:
    """An ad-hoc task for a user's prompt file (`--prompts FILE`): named after the file."""
    path = Path(path).resolve()
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


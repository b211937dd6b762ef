"""The `instruct-pix2pix` inference method: the editing-based alternative the IMG paper sets against IMG (Fig. 3).

For each (prompt, seed): the initial image (the cached `base` run's image for the same identity, else
generated — the item's info says which, as `img` records it), the MLLM asked the IMG paper's
misalignment question for (prompt, seed) (the same template choice `img` makes), its answer cut to one
short imperative instruction (artefact `instruction`), and the editor applying it with the item's seed.
An answer meaning "nothing to change" keeps the image (info `edited: false`). `rounds` > 1 repeats
ask → edit on the edited image (artefacts `instruction1`, `round1`, ...). Every pixel-changing setting
(editor weights and revision, steps, both guidance scales, scheduler, resolution, MLLM, templates,
rounds) is a parameter or a resolved digest, so it is in the run identity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from imgbench.methods.instruct_pix2pix.instruction import NOTHING, to_instruction

from imgbench.api.method import Generation, Method
from imgbench.api.model import Model
from imgbench.api.records import GenerationRequest
from imgbench.errors import UserError
from imgbench.method_steps import BaseImages, Cost, ask, shipped
from imgbench.mllm.questions import build_templates
from imgbench.provenance import read_part
from imgbench.util.text import as_bool


class InstructPix2PixMethod(Method):
    """MLLM-written instruction → Instruct-Pix2Pix edit of the base image."""

    name = "instruct-pix2pix"
    version = 1

    def __init__(self, editor: str | None = None, revision: str | None = None, editor_path: str | None = None,
                 steps: int = 10, guidance_scale: float = 7.5, image_guidance_scale: float = 1.5,
                 scheduler: str | None = None, resolution: int = 512, editor_dtype: str = "fp16",
                 mllm: str | None = None, conversation: str = "llava_v0", mllm_dtype: str = "bf16",
                 templates: str = "official", template: str | None = None, answer_tokens: int = 48,
                 rounds: int = 1, reuse_base: bool = True, device: str | None = None) -> None:
        """`editor` is a hub id (`editor_path` a local folder laid out like it); `mllm` writes the instructions.
        `reuse_base` and `device` do not change pixels and are not part of the run's identity."""
        missing = [what for what, value in (("editor (e.g. timbrooks/instruct-pix2pix)", editor or editor_path),
                                            ("mllm (e.g. shi-labs/IMG/llava)", mllm)) if not value]
        if missing:
            raise UserError(f"method instruct-pix2pix needs {' and '.join(missing)}: this model has no per-model "
                            f"defaults (methods/instruct_pix2pix/<model or family>.yaml), so pass them with "
                            f"--method-arg.")
        if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
            raise UserError(f"rounds must be a whole number of at least 1, got {rounds!r}.")
        if isinstance(answer_tokens, bool) or not isinstance(answer_tokens, int) or answer_tokens < 1:
            raise UserError(f"answer_tokens must be a whole number of at least 1, got {answer_tokens!r}.")
        from imgbench.methods.instruct_pix2pix.editor import check_guidance, make_editor

        check_guidance(guidance_scale, image_guidance_scale, steps)  # before any weights are looked up
        super().__init__(editor=editor, revision=revision, editor_path=editor_path, steps=steps,
                         guidance_scale=float(guidance_scale), image_guidance_scale=float(image_guidance_scale),
                         scheduler=scheduler, resolution=resolution, editor_dtype=editor_dtype, mllm=mllm,
                         conversation=conversation, mllm_dtype=mllm_dtype, templates=templates, template=template,
                         answer_tokens=answer_tokens, rounds=rounds)
        self.base_images = BaseImages(as_bool(reuse_base, "reuse_base"))
        self.editor = make_editor(editor or "", revision, editor_path, steps, guidance_scale, image_guidance_scale,
                                  scheduler, resolution, device, editor_dtype)
        from imgbench.mllm.hf import load_mllm

        self._templates = replace(build_templates(shipped(templates, Path(__file__).parent), template),
                                  source=templates if not template else "fixed")
        self._mllm = load_mllm(mllm, conversation=conversation, dtype=mllm_dtype, device=device)

    def identity(self) -> dict[str, Any]:
        """Params plus the content they name: editor weights (commit or digest), MLLM weights, template list."""
        identity = super().identity()
        mllm = {k: v for k, v in self._mllm.identity().items() if k != "path"}
        identity["resolved"] = {"editor": self.editor.identity(), "mllm": mllm,
                                "templates": self._templates.identity()}
        identity["params"] = {k: v for k, v in self.params.items() if k != "editor_path"}  # a folder's digest counts
        return identity

    def parts(self) -> list[dict[str, Any]]:
        """The MLLM that writes the instructions and a trained editor (their manifests record the seeds their data
        saw)."""
        mllm = read_part(f"mllm {self._mllm.identity().get('name', '')}".strip(), self._mllm.provenance_manifest())
        return [mllm, *self.editor.parts()]

    def prepare(self, context: Any) -> None:
        """Find the `base` run of the same task, model, size and epoch: its images are the initial images."""
        self.base_images.prepare(context)

    def generate(self, requests: Sequence[GenerationRequest], model: Model) -> list[Generation]:
        costs = [Cost() for _ in requests]
        images, infos = self.base_images.initial(requests, model, costs)
        artefacts: list[dict[str, Any]] = [{"initial": image} for image in images]
        questions = [self._templates.question(r.prompt.text, r.seed) for r in requests]
        edited = [False] * len(requests)
        for round_index in range(self.params["rounds"]):
            suffix = str(round_index) if round_index else ""
            if round_index:
                for item, image in zip(artefacts, images, strict=True):
                    item[f"round{round_index}"] = image
            answers = ask(self._mllm, images, questions, self.params["answer_tokens"], costs)
            instructions = [to_instruction(answer) for answer in answers]
            todo = [i for i, text in enumerate(instructions) if text != NOTHING]
            if todo:
                made = self.editor.edit([images[i] for i in todo], [instructions[i] for i in todo],
                                        [requests[i].seed for i in todo])
                images = list(images)
                for i, image in zip(todo, made, strict=True):
                    images[i], edited[i] = image, True
                    costs[i].edit_passes += 1
            for item, question, answer, text in zip(artefacts, questions, answers, instructions, strict=True):
                item[f"instruction{suffix}"] = {"question": question, "answer": answer, "instruction": text}
        return [Generation(image=image, artefacts=item,
                           info={**info, "question": question, "edited": was_edited,
                                 "cost": cost.record(len(requests))})
                for image, item, info, question, was_edited, cost in
                zip(images, artefacts, infos, questions, edited, costs, strict=True)]

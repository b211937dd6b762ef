"""The `img` inference method (IMG paper §3, Fig. 2; img_paper.md §1.1 and §1.7).

For each (prompt, seed): the initial image x (the model's plain generation, same seed — reused
bit-identically from a cached `base` run with the same identity when there is one), guidance h
(the MLLM's last-layer states over (x, question(prompt)), or the model's text embedding, or
none), the IP tokens c = encode_image(x), the Implicit Aligner applied `passes` times (paper: 3),
and the regeneration with the same prompt and seed and the aligned tokens at `ip_scale` (0.2).
`rounds` > 1 re-applies IMG to its own output (paper Fig. 7; rounds = 1 for every number).

Token format between the pieces: `model.encode_image` gives (B, N, D) tokens, the method hands
the model CPU float32 (B, N, D) tensors, and the model moves them to its own device and dtype.
The aligner must match both ends: its token width is the width of the model's IP tokens and its
guidance width the MLLM's hidden size (or the text encoder's width for `guidance=text`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from imgbench.methods.img.guidance import GUIDANCE_SOURCES, check_source

from imgbench.api.method import Generation, Method
from imgbench.api.model import Model
from imgbench.api.records import GenerationRequest
from imgbench.controls import TOKEN_CONTROLS, partner_prompts, random_norm_matched
from imgbench.errors import MissingFiles, UserError, collect_missing, missing_together
from imgbench.method_steps import BaseImages, Cost, ask
from imgbench.method_steps import shipped as shipped_in
from imgbench.mllm.questions import build_templates
from imgbench.provenance import read_part
from imgbench.util.text import as_bool

logger = logging.getLogger(__name__)


class IMGMethod(Method):
    """Implicit Multimodal Guidance: MLLM guidance → Implicit Aligner → re-generation through the IP-Adapter."""

    name = "img"
    version = 1

    def __init__(self, aligner: str | None = None, heads: int = 20, guidance: str = "finetuned-mllm",
                 mllm: str | None = None, original_mllm: str | None = None, conversation: str = "llava_v0",
                 mllm_dtype: str = "bf16", templates: str = "official", template: str | None = None,
                 ip_scale: float = 0.2, passes: int = 3, rounds: int = 1, save_answer: bool = False,
                 answer_tokens: int = 64, reuse_base: bool = True, save_tokens: bool = False,
                 device: str | None = None, control: str | None = None) -> None:
        """`mllm` is the misalignment-finetuned MLLM (guidance 'finetuned-mllm', the paper's IMG);
        `original_mllm` the un-finetuned one that guidance 'mllm' reads (Table 5a, "Original MLLM").
        `control` swaps one ingredient for a control (imgbench.controls; registered as the variants
        img-own-tokens, img-zero-tokens, img-random-tokens, img-other-guidance); 'own-tokens' is the
        same run as guidance 'none'. `reuse_base` and `save_tokens` (keep the aligned tokens as a JSON
        artefact) do not change pixels and are not part of the run's identity."""
        check_source(guidance)
        if control is not None and control not in TOKEN_CONTROLS:
            raise UserError(f"unknown control {control!r}; the controls are {', '.join(TOKEN_CONTROLS)}.")
        if guidance == "none" and control is None:  # IMG's "No guidance" row (Table 5a) is this control
            control = "own-tokens"
        if control in ("own-tokens", "zero-tokens", "random-tokens"):  # unaligned or replaced tokens: no guidance
            guidance = "none"
        if control == "other-guidance" and guidance == "none":
            raise UserError("control other-guidance borrows another prompt's guidance, so it needs a guidance "
                            "source other than 'none'.")
        save_answer = as_bool(save_answer, "save_answer")
        missing = []
        if guidance != "none" and not aligner:
            missing.append("aligner (a checkpoint such as shi-labs/IMG/aligner_sdxl.pth)")
        if guidance == "finetuned-mllm" and not mllm:
            missing.append("mllm (a LLaVA / Qwen2.5-VL folder or hub id, e.g. shi-labs/IMG/llava)")
        if guidance == "mllm" and not original_mllm:
            missing.append("original_mllm (the un-finetuned MLLM for guidance=mllm, e.g. llava-hf/llava-1.5-13b-hf)")
        if missing:
            raise UserError(f"method img needs {' and '.join(missing)}: this model has no per-model defaults "
                            f"(methods/img/<model or family>.yaml), so pass them with --method-arg "
                            f"(e.g. --method-arg aligner=PATH --method-arg mllm=PATH). Guidance sources: "
                            f"{', '.join(GUIDANCE_SOURCES)}.")
        if passes < 1 or rounds < 1:
            raise UserError(f"passes and rounds must be at least 1, got passes={passes}, rounds={rounds}.")
        whole = isinstance(answer_tokens, int) and not isinstance(answer_tokens, bool)
        if save_answer and (not whole or answer_tokens < 1):
            raise UserError(f"answer_tokens must be a whole number of at least 1 when save_answer is on (the length "
                            f"of the MLLM's saved answer), got {answer_tokens!r}.")
        if float(ip_scale) < 0:
            raise UserError(f"ip_scale must be at least 0 (paper: 0.2), got {ip_scale}.")
        if device is not None:
            from imgbench.models.diffusers_base import resolve_device

            device = resolve_device(device)  # an unknown or unavailable device is a UserError, not a crash later
        super().__init__(aligner=aligner, heads=heads, guidance=guidance, mllm=mllm, original_mllm=original_mllm,
                         conversation=conversation,
                         mllm_dtype=mllm_dtype, templates=templates, template=template, ip_scale=float(ip_scale),
                         passes=passes, rounds=rounds, save_answer=save_answer, answer_tokens=answer_tokens,
                         **({"control": control} if control else {}))
        self.base_images = BaseImages(as_bool(reuse_base, "reuse_base"))
        self.save_tokens = as_bool(save_tokens, "save_tokens")
        self.device = device
        self._identity_extra: dict[str, Any] = {}
        self._templates = None
        self._mllm = None
        self._aligner: Any = None
        self._aligner_path: Path | None = None
        missing: list[MissingFiles] = []  # aligner, templates and MLLM: every missing one in one error
        if guidance != "none":
            from imgbench.mllm.weights import resolve_file

            found = collect_missing(missing, lambda: resolve_file(shipped(aligner), what="IMG aligner"))
            if found is not None:
                self._aligner_path, facts = found
                self._identity_extra["aligner"] = {**facts, "source": aligner}  # as written: ids move with checkouts
        if guidance in ("mllm", "finetuned-mllm"):
            from imgbench.mllm.hf import load_mllm

            listed = collect_missing(missing, lambda: build_templates(shipped(templates), template))
            self._mllm = collect_missing(missing, lambda: load_mllm(
                mllm if guidance == "finetuned-mllm" else original_mllm, conversation=conversation, dtype=mllm_dtype,
                device=device))
            if listed is not None and self._mllm is not None:
                self._templates = replace(listed, source=templates if not template else "fixed")
                self._identity_extra.update(mllm=self._mllm.identity(), templates=self._templates.identity())
        if missing:
            raise missing_together(missing)
        self._partners: dict[str, Any] = {}

    def identity(self) -> dict[str, Any]:
        """Params plus the content of what they name: aligner sha256, MLLM weights and template, template list."""
        identity = super().identity()
        identity["resolved"] = self._identity_extra
        if identity["resolved"].get("mllm"):
            identity["resolved"]["mllm"] = {k: v for k, v in identity["resolved"]["mllm"].items() if k != "path"}
        return identity

    def parts(self) -> list[dict[str, Any]]:
        """The aligner (its aligner.json records the pairs' seeds) and the MLLM whose states guide it."""
        parts = []
        if self._aligner_path is not None:
            parts.append(read_part("aligner", self._aligner_path.with_suffix(".json")))
        if self._mllm is not None:
            parts.append(read_part(f"mllm {self._mllm.identity().get('name', '')}".strip(),
                                   self._mllm.provenance_manifest()))
        return parts

    # base-run reuse ---------------------------------------------------------------------
    def prepare(self, context: Any) -> None:
        """Find the `base` run of the same task, model, size and epoch: its images are our initial images.
        For the other-guidance control, pair every prompt with the task's next prompt of the same tag."""
        if self.params.get("control") == "other-guidance":
            if context is None:
                raise UserError("control other-guidance needs the task's prompts (run it through `imgbench run`).")
            self._partners = partner_prompts(context.task.prompts)
        self.base_images.prepare(context)

    # guidance and alignment -------------------------------------------------------------
    def _torch_device(self) -> str:
        import torch

        return self.device or ("cuda" if torch.cuda.is_available() else "cpu")

    def _load_aligner(self, model: Model, token_shape: tuple[int, int], guidance_dim: int) -> Any:
        """The aligner, checked once against the model's IP tokens and the guidance width."""
        if self._aligner is None:
            from imgbench.methods.img.aligner import load_aligner

            aligner = load_aligner(self._aligner_path, heads=self.params["heads"])
            config, token_dim = aligner.config, int(token_shape[1])
            if (config.token_dim, config.guidance_dim) != (token_dim, guidance_dim):
                source = {"text": "the model's text encoder", "mllm": "the original MLLM"}.get(
                    self.params["guidance"], "the MLLM")
                raise UserError(f"aligner {self.params['aligner']} maps guidance of width {config.guidance_dim} onto "
                                f"tokens of width {config.token_dim}, but {model.name!r} has IP tokens "
                                f"{tuple(token_shape)} and {source} gives states of width {guidance_dim}. "
                                f"Use the aligner trained for this model and guidance (shi-labs/IMG aligner_sdxl.pth "
                                f"for SDXL, aligner_flux.pth for FLUX.1-dev, both for LLaVA-1.5-13B) or train one "
                                f"with `imgbench train img`.")
            self._aligner = aligner.to(self._torch_device()).eval()
        return self._aligner

    def _align(self, images: list[Any], requests: Sequence[GenerationRequest], questions: list[str],
               model: Model) -> tuple[Any, Any]:
        """(initial tokens, aligned tokens), both CPU float32 (B, N, D): the format `model.generate` takes."""
        import torch
        from imgbench.methods.img.guidance import text_guidance

        tokens = torch.as_tensor(model.encode_image(images)).detach().float().cpu()
        control, guidance = self.params.get("control"), self.params["guidance"]
        if control == "zero-tokens":
            return tokens, torch.as_tensor(model.null_image_tokens(len(requests))).float().cpu()
        if control == "random-tokens":
            return tokens, random_norm_matched(tokens, [(r.prompt.id, r.seed) for r in requests])
        if guidance == "none":
            return tokens, tokens  # Table 5a "No guidance": the initial tokens as they are
        if control == "other-guidance":  # the partner's guidance: its own initial image and question, same seed
            requests = [replace(r, prompt=self._partners[r.prompt.id]) for r in requests]
            images = self.base_images.initial(requests, model)[0] if guidance != "text" else images
            questions = [self._templates.question(r.prompt.text, r.seed) if self._templates else "" for r in requests]
        if guidance == "text":
            states = text_guidance(model, [r.prompt.text for r in requests])
        else:
            states = self._mllm.hidden_states(images, questions)
        aligner = self._load_aligner(model, tuple(tokens.shape[1:]), int(states[0].shape[-1]))
        device = self._torch_device()
        longest = max(s.shape[0] for s in states)
        padded = torch.zeros(len(states), longest, states[0].shape[-1])
        mask = torch.zeros(len(states), longest, dtype=torch.bool)
        for i, state in enumerate(states):
            padded[i, :state.shape[0]] = torch.as_tensor(state).float()
            mask[i, :state.shape[0]] = True
        with torch.no_grad():
            aligned = aligner.align(padded.to(device), tokens.to(device), self.params["passes"], mask.to(device))
        return tokens, aligned.float().cpu()

    def generate(self, requests: Sequence[GenerationRequest], model: Model) -> list[Generation]:
        if not model.supports_image_tokens:
            raise UserError(f"method img needs a model with an IP-Adapter (image tokens); {model.name!r} has none.")
        costs = [Cost() for _ in requests]
        initial, infos = self.base_images.initial(requests, model, costs)
        questions = [self._templates.question(r.prompt.text, r.seed) if self._templates else "" for r in requests]
        artefacts: list[dict[str, Any]] = [{"initial": image} for image in initial]
        if self.params["save_answer"] and self._mllm is not None:
            answers = ask(self._mllm, initial, questions, self.params["answer_tokens"], costs)
            for item, question, answer in zip(artefacts, questions, answers, strict=True):
                item["answer"] = {"question": question, "answer": answer}
        images = initial
        for round_index in range(self.params["rounds"]):
            if round_index:
                for item, image in zip(artefacts, images, strict=True):
                    item[f"round{round_index}"] = image
            tokens, aligned = self._align(images, requests, questions, model)
            images = model.generate(requests, image_tokens=aligned, ip_scale=self.params["ip_scale"])
            for cost in costs:
                cost.generations += 1
                cost.mllm_calls += int(self._mllm is not None)  # one forward pass for the guidance states
            if self.save_tokens:
                for index, item in enumerate(artefacts):
                    item[f"tokens{round_index}"] = token_record(tokens[index], aligned[index],
                                                                self.params["ip_scale"])
        if self.params.get("control") == "other-guidance":
            for info, request in zip(infos, requests, strict=True):
                info["guidance_from_prompt"] = self._partners[request.prompt.id].id
        return [Generation(image=image, artefacts=item, info={**info, **({"question": q} if q else {}),
                                                              "cost": cost.record(len(requests))})
                for image, item, info, q, cost in zip(images, artefacts, infos, questions, costs, strict=True)]


def shipped(value: str) -> str:
    """A relative path is looked up beside this file when the working directory lacks it (method_steps.shipped)."""
    return shipped_in(value, Path(__file__).parent)


def token_record(initial: Any, aligned: Any, ip_scale: float) -> dict[str, Any]:
    """One image's IP tokens before and after alignment, as JSON (float32 values round-trip exactly)."""
    return {"shape": list(aligned.shape), "dtype": "float32", "ip_scale": ip_scale,
            "change_norm": float((aligned - initial).norm()), "initial": initial.tolist(), "aligned": aligned.tolist()}

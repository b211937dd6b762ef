"""The `sld` inference method: Self-correcting LLM-controlled Diffusion (Wu et al., CVPR 2024; the IMG paper's
Table 3 baseline). Never Safe Latent Diffusion.

For each (prompt, seed): the initial image (the cached `base` run's, else generated; info says which, as
`img` and `instruct-pix2pix` record it); the planner parses the prompt once (objects, background, negation);
then `rounds` times: OWLv2 detects the parsed objects, the planner corrects the layout, the difference becomes
operations (operations.py), SAM masks the detected objects, and latent_ops.py inverts the image, composes the
operations' latents and re-generates with the first `frozen_step_ratio` of the steps frozen. A round with no
operations, or whose planner answer stays unreadable after `planner_tries` answers (recorded `fallback: "no
correction"`), ends the loop and keeps the image. Images are processed square at `resolution` (SD 1.5: 512) and
returned at their own size: SDXL / FLUX images take that downscale route.

On the shapes world (`--model shapes`, methods/sld/shapes.yaml) the planner is the rule `shapes-grammar`
(shapes_planner.py), the detector `shapes-detector` or `oracle` (shapes_detect.py; each object's own mask
instead of SAM's) and the latent operations run on the shapes model (backends.ShapesBackend); each item's info
`operations_checked` says which operations the checker sees done (op_check.py, a measurement only).

Artefacts per item: `initial`, `parse` (+ the planner's answers), and per round r (suffix "" for the first,
then "1", ...): `detections` (boxes and scores), `layout` (the corrected boxes and the planner's answers),
`operations`, `masks` (PNG: each operation's latent mask, grey level by kind) and `round<r>` images.
Info `cost`: base generations, planner calls (cache hits are free), detector calls (OWLv2 + SAM forwards),
denoising steps (UNet evaluations) and seconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgbench.methods.sld.operations import KINDS, base_name, diff

from imgbench.api.method import Generation, Method
from imgbench.api.model import Model
from imgbench.api.records import GenerationRequest
from imgbench.errors import UserError
from imgbench.method_steps import BaseImages, Cost
from imgbench.util.text import as_bool

SHAPES_PLANNER = "shapes-grammar"
#: Parameters that change nothing on the shapes route (OWLv2 / SAM) or with the rule planner (an LLM's): not hashed.
OWL_PARAMS = ("detector_revision", "attribute_threshold", "primitive_threshold", "nms_threshold", "sam",
              "sam_revision", "sam_path")
LLM_PARAMS = ("planner_url", "planner_path", "planner_revision", "planner_dtype", "planner_tries", "planner_tokens")
LATENT_PARAMS = ("latent_model", "latent_model_path")


@dataclass
class SLDCost(Cost):
    """`Cost` plus what SLD spends: planner calls, detector calls (OWLv2 and SAM forwards), denoising steps."""

    planner_calls: int = 0
    detector_calls: int = 0
    denoising_steps: int = 0

    def record(self, batch_size: int) -> dict[str, Any]:
        return {**super().record(batch_size), "planner_calls": self.planner_calls,
                "detector_calls": self.detector_calls, "denoising_steps": self.denoising_steps}


class SLDMethod(Method):
    """Planner → detector → corrected layout → latent operations → frozen-step re-generation, `rounds` times."""

    name = "sld"
    version = 1

    def __init__(self, planner: str | None = None, planner_url: str | None = None, planner_path: str | None = None,
                 planner_revision: str | None = None, planner_dtype: str = "bf16", planner_tries: int = 3,
                 planner_tokens: int = 512, detector: str = "google/owlv2-base-patch16-ensemble",
                 detector_revision: str | None = None, detector_path: str | None = None,
                 attribute_threshold: float = 0.45, primitive_threshold: float = 0.2, nms_threshold: float = 0.15,
                 sam: str = "facebook/sam-vit-huge", sam_revision: str | None = None, sam_path: str | None = None,
                 steps: int = 50, guidance: float = 2.5, object_guidance: float = 7.5, inversion_guidance: float = 2.5,
                 frozen_step_ratio: float = 0.5, attribute_strength: float = 0.8, dilate: int = 1, bg_seed: int = 42,
                 fg_seed: int = 9487, inversion_floor: float = 0.0, attribute_noise: bool = False,
                 resolution: int = 512, rounds: int = 1, planner_key_env: str = "OPENAI_API_KEY",
                 planner_cache: str | None = None, reuse_base: bool = True, device: str | None = None,
                 latent_model: str = "sd15", latent_model_path: str | None = None) -> None:
        """`planner_key_env`, `planner_cache`, `reuse_base` and `device` do not change pixels: not in the identity.
        `latent_model` (a catalog model of family sd15, or a local folder as `latent_model_path`) is the second
        pipeline of the downscale route: SDXL / FLUX images are edited on it at `resolution`."""
        for name, value, low in (("rounds", rounds, 1), ("steps", steps, 1), ("resolution", resolution, 32)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise UserError(f"{name} must be a whole number of at least {low}, got {value!r}.")
        if not 0 <= float(frozen_step_ratio) <= 1 or not 0 <= float(attribute_strength) <= 1:
            raise UserError("frozen_step_ratio and attribute_strength must lie in [0, 1].")
        from imgbench.methods.sld.detector import OwlDetector, SamMasker, detector_source, sam_source
        from imgbench.methods.sld.planner import build_planner
        from imgbench.methods.sld.shapes_detect import DETECTORS, ShapesFinder, build_detector
        from imgbench.methods.sld.shapes_planner import ShapesPlanner

        from imgbench.models.hub import resolve_all

        self._planner: Any = ShapesPlanner() if planner == SHAPES_PLANNER else build_planner(
            planner, planner_url, planner_path, planner_revision, planner_key_env, device, planner_dtype,
            planner_tries, planner_tokens)
        self.finder = self.detector = self.sam = None
        if detector in DETECTORS:  # the shapes world: its own detector's masks, no OWLv2 or SAM weights
            self.finder = ShapesFinder(build_detector(detector, detector_path))
        elif "/" not in (detector or "/") and not detector_path:
            raise UserError(f"detector={detector!r} is neither an OWLv2 hub id (owner/name) nor one of the shapes "
                            f"world's detectors ({', '.join(DETECTORS)}).")
        params = dict(planner=planner, planner_url=planner_url, planner_path=planner_path,
                      planner_revision=planner_revision, planner_dtype=planner_dtype, planner_tries=planner_tries,
                      planner_tokens=planner_tokens, detector=detector, detector_revision=detector_revision,
                      detector_path=detector_path, attribute_threshold=float(attribute_threshold),
                      primitive_threshold=float(primitive_threshold), nms_threshold=float(nms_threshold), sam=sam,
                      sam_revision=sam_revision, sam_path=sam_path, steps=steps, guidance=float(guidance),
                      object_guidance=float(object_guidance), inversion_guidance=float(inversion_guidance),
                      frozen_step_ratio=float(frozen_step_ratio), attribute_strength=float(attribute_strength),
                      dilate=dilate, bg_seed=bg_seed, fg_seed=fg_seed, inversion_floor=float(inversion_floor),
                      attribute_noise=as_bool(attribute_noise, "attribute_noise"),
                      resolution=resolution, rounds=rounds, latent_model=latent_model,
                      latent_model_path=latent_model_path)
        unused = ((OWL_PARAMS + LATENT_PARAMS if self.finder else ())
                  + (LLM_PARAMS if planner == SHAPES_PLANNER else ()))
        super().__init__(**{k: v for k, v in params.items() if k not in unused})
        if self.finder is None:
            resolved = resolve_all({"detector": detector_source(detector, detector_revision, detector_path),
                                    "sam": sam_source(sam, sam_revision, sam_path)})  # both misses in one error
            self.detector = OwlDetector(detector, detector_revision, detector_path, attribute_threshold,
                                        primitive_threshold, nms_threshold, device, resolved=resolved["detector"])
            self.sam = SamMasker(sam, sam_revision, sam_path, device, resolved=resolved["sam"])
        self.base_images = BaseImages(as_bool(reuse_base, "reuse_base"))
        self._cache = Path(planner_cache).expanduser() if planner_cache else None
        self._editor: Any = None
        self._device = device
        self._latent: Any = None
        """The downscale route's SD 1.5-class model (built in `prepare` for an SDXL / FLUX run), else None."""

    def identity(self) -> dict[str, Any]:
        """Params (folders replaced by their digests) plus the planner's, detector's and SAM's resolved identities."""
        identity = super().identity()
        identity["params"] = {k: v for k, v in self.params.items() if not k.endswith("_path")}
        identity["resolved"] = {"planner": self._planner.identity(), **({"detector": self.finder.identity()} if
                                self.finder else {"detector": self.detector.identity(), "sam": self.sam.identity()})}
        if self.params.get("latent_model_path"):
            from imgbench.models.hub import folder_digest

            identity["resolved"]["latent_model"] = folder_digest(self.params["latent_model_path"], "SD 1.5 model",
                                                                 "--method-arg latent_model_path")
        return identity

    def prepare(self, context: Any) -> None:
        """Refuse a non-SD 1.5 model before any image is made; find the cached base run; answers are cached in
        the run folder unless `planner_cache` names a folder."""
        family = getattr(getattr(context, "model_spec", None), "family", None)
        if family == "shapes" and self.finder is None:
            raise UserError("method sld on the shapes model reads its images with the world's detectors: "
                            "--method-arg detector=oracle (the exact checker's objects, an upper bound) or "
                            "detector=shapes-detector (learned); see docs/sld.md.")
        if family not in (None, "shapes") and (self.finder is not None or self.params["planner"] == SHAPES_PLANNER):
            raise UserError(f"detector={self.params['detector']} and planner={self.params['planner']} read the "
                            f"shapes world only, and this model's family is {family}: use --model shapes, or an "
                            f"OWLv2 detector and an LLM planner on sd15.")
        if family not in (None, "sd15", "shapes"):  # SDXL / FLUX: the original's downscale route
            self._latent = self._latent_model()
        self.base_images.prepare(context)
        if self._cache is None and context is not None:
            self._cache = Path(context.store.root) / "planner-cache"

    def _latent_model(self) -> Any:
        """The SD 1.5-class model an SDXL / FLUX image is edited on (weights resolved now: a miss fails here)."""
        from imgbench import catalog
        from imgbench.components import build_model

        name = self.params["latent_model"]
        family = catalog.models().get(name).spec.family
        if family != "sd15":
            raise UserError(f"--method-arg latent_model={name} is a {family} model; the downscale route edits "
                            f"on an SD 1.5-class model (e.g. latent_model=sd15).")
        return build_model(name, {}, device=self._device, model_path=self.params["latent_model_path"])[1]

    def editor(self, model: Model) -> Any:
        """The latent editor on the run's own model (built once): an SD 1.5-class pipeline, or the shapes model."""
        if self._editor is None:
            from diffusers import StableDiffusionPipeline
            from imgbench.methods.sld.backends import SD15Backend, ShapesBackend
            from imgbench.methods.sld.latent_ops import LatentEditor

            from imgbench.worlds.shapes.model import ShapesModel

            pipe = getattr(self._latent or model, "pipeline", None)
            if self.finder is not None and isinstance(model, ShapesModel):
                backend: Any = ShapesBackend(model)
            elif self.finder is None and isinstance(pipe, StableDiffusionPipeline):
                backend = SD15Backend(pipe)
            else:
                raise UserError(f"method sld runs its latent operations on an SD 1.5-class pipeline (OWLv2 "
                                f"detector) or the shapes model (detector=oracle or shapes-detector); model "
                                f"{type(model).__name__} with detector={self.params['detector']} is neither "
                                f"(SDXL / FLUX runs edit on --method-arg latent_model, docs/sld.md).")
            p = self.params
            self._editor = LatentEditor(backend, p["steps"], p["guidance"], p["object_guidance"],
                                        p["inversion_guidance"], p["frozen_step_ratio"], p["attribute_strength"],
                                        p["dilate"], p["bg_seed"], p["fg_seed"], p["inversion_floor"],
                                        p["attribute_noise"])
        return self._editor

    def generate(self, requests: Sequence[GenerationRequest], model: Model) -> list[Generation]:
        self._planner.cache_dir = self._cache
        costs = [SLDCost() for _ in requests]
        images, infos = self.base_images.initial(requests, model, costs)
        out = []
        for request, image, info, cost in zip(requests, images, infos, costs, strict=True):
            checked: list[dict[str, Any]] = []
            final, artefacts, corrected = self._correct(request, image, model, cost, checked)
            extra = {"operations_checked": checked} if self.finder is not None else {}
            out.append(Generation(image=final, artefacts={"initial": image, **artefacts},
                                  info={**info, "corrected": corrected, **extra, "cost": cost.record(len(requests))}))
        return out

    def _correct(self, request: GenerationRequest, image: Any, model: Model, cost: SLDCost,
                 checked: list[dict[str, Any]]) -> tuple[Any, dict[str, Any], bool]:
        """One item's loop; returns (final image, artefacts, whether any round changed the image). On the shapes
        world `checked` gets each operation's outcome as the checker reads it (op_check.py: a measurement of the
        finished round's image, never an input to the method)."""
        from PIL import Image

        side = self.params["resolution"]
        calls = self._planner.calls
        parse, record = self._planner.parse(request.prompt.text)
        artefacts: dict[str, Any] = {"parse": {"parse": parse.to_json() if parse else None, "planner": record}}
        cost.planner_calls += self._planner.calls - calls
        if parse is None:
            return image, artefacts, False
        work = image.convert("RGB").resize((side, side), Image.Resampling.LANCZOS)
        corrected = False
        for r in range(self.params["rounds"]):
            suffix = str(r) if r else ""
            result = self._round(request, work, parse, model, cost, artefacts, suffix)
            if result is None:
                break
            (work, operations), corrected = result, True
            if self.finder is not None:
                from imgbench.methods.sld.op_check import check_all

                checked += check_all(operations, work, r)
            artefacts[f"round{r + 1}"] = work
        final = work.resize(image.size, Image.Resampling.LANCZOS) if corrected and work.size != image.size else work
        return (final if corrected else image), artefacts, corrected

    def _round(self, request: GenerationRequest, work: Any, parse: Any, model: Model, cost: SLDCost,
               artefacts: dict[str, Any], suffix: str) -> tuple[Any, list[Any]] | None:
        """Detect → correct → operate → regenerate: (new image, operations), or None when there is nothing to do
        (or no readable answer)."""
        import torch
        from imgbench.methods.sld.latent_ops import to_latent_mask

        before = (self._detector_calls(), self._planner.calls)
        detections = self.finder.find(work) if self.finder else self.detector.detect(work, parse.objects)
        artefacts[f"detections{suffix}"] = detections
        layout, record = self._planner.correct(request.prompt.text, parse, detections)
        artefacts[f"layout{suffix}"] = {"layout": layout, "planner": record}
        operations = diff(detections, layout) if layout is not None else []
        artefacts[f"operations{suffix}"] = [op.to_json() for op in operations]
        result = None
        if operations:
            editor = self.editor(model)
            steps = editor.denoising_steps
            with torch.inference_mode():
                background = editor.invert(work)
                height, width = background.shape[-2:]
                pixel_masks = self.finder.masks(detections) if self.finder else self.sam.masks(
                    work, [d["box"] for d in detections])
                masks = {d["name"]: to_latent_mask(m, height, width, editor.dilate)
                         for d, m in zip(detections, pixel_masks, strict=True)}
                composition = editor.compose(background, operations, masks,
                                             lambda image, name: self._locate(image, name, height, width),
                                             seed=request.seed)
                objects = [f"a {base_name(item['name'])}" for item in layout or []]
                prompt = f"{parse.background} with {', '.join(objects)}" if parse.background and objects \
                    else request.prompt.text
                result = editor.regenerate(composition, prompt, parse.negation)
            artefacts[f"masks{suffix}"] = _mask_image(composition.masks, height, width)
            cost.denoising_steps += editor.denoising_steps - steps
        cost.detector_calls += self._detector_calls() - before[0]
        cost.planner_calls += self._planner.calls - before[1]
        return None if result is None else (result, operations)

    def _detector_calls(self) -> int:
        return self.finder.calls if self.finder else self.detector.calls + self.sam.calls

    def _locate(self, image: Any, name: str, height: int, width: int) -> tuple[list[float], Any]:
        """An added object in its own image: the detector's best box and its mask (SAM's on SD 1.5, the shapes
        detector's own on shapes), else the centre box."""
        from imgbench.methods.sld.latent_ops import box_mask, to_latent_mask

        if self.finder is not None:
            found = self.finder.locate(image, name)
        else:
            boxes = self.detector.detect(image, [{"name": name.split()[-1], "attributes": [
                " ".join(name.split()[:-1]) or None]}])
            best = max(boxes, key=lambda d: d["score"]) if boxes else None
            found = (best["box"], self.sam.masks(image, [best["box"]])[0]) if best else None
        if found is None:
            box = [0.25, 0.25, 0.5, 0.5]
            return box, box_mask(box, height, width)
        return found[0], to_latent_mask(found[1], height, width, self.params["dilate"])


def _mask_image(masks: list[tuple[Any, Any]], height: int, width: int) -> Any:
    """Every operation's latent mask in one greyscale PNG: delete 64, reposition 128, attribute 192, add 255."""
    import numpy as np
    from PIL import Image

    canvas = np.zeros((height, width), dtype=np.uint8)
    for op, mask in masks:
        canvas[mask.cpu().numpy()] = 64 * (KINDS.index(op.kind) + 1) - (1 if op.kind == "add" else 0)
    return Image.fromarray(canvas)

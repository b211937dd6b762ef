"""SLD's two LLM steps behind one `Planner` (Wu et al., CVPR 2024, §3.1 and §3.2; methods_apis.md §(b)).

(a) `parse`: the user prompt → objects (name, count, one attribute slot per instance), background, negation —
    answered as SLD answers: `Objects: [('car', ['white', None])]`, `Background: ...`, `Negation: ...`.
(b) `correct`: the parse and the detected layout (`[name, [x, y, w, h]]`, normalised to [0, 1]) → the
    corrected layout, answered as `Updated Objects: [...]`.

Two back ends answer the chat messages: `TransformersChat` (a local chat model, its chat template, greedy
decoding) and `OpenAIChat` (any OpenAI-compatible `/chat/completions` endpoint; the key is read from an
environment variable at call time and is never part of an identity, a cache key or a record).

Differences from the original, on purpose:
- Bounded retries: the original loops forever until the markers parse. Here an unreadable answer is followed
  by one correction turn ("could not be read: why; answer again in the format") up to `max_tries` answers, then
  the step's result is None and the record says `fallback: "no correction"`. The correction turn also makes a
  retry meaningful under greedy decoding, where asking the same question again gives the same answer.
- Answers are cached on disk keyed by sha256 of (back-end identity, messages), one file per answer written
  atomically (shards may share the folder), so a rerun asks the planner 0 times.
"""

from __future__ import annotations

import ast
import json
import logging
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from imgbench.errors import UserError
from imgbench.util.hashing import sha256_json
from imgbench.util.io import atomic_write_json

logger = logging.getLogger(__name__)

PARSE_TEMPLATE = """You read a text-to-image prompt and list what must be in the image.
Answer in exactly three lines:
Objects: a Python list of (name, attributes) tuples, one tuple per kind of object; attributes is a list with one
entry per instance (so its length is the count), each a short attribute phrase or None.
Background: a short description of the scene, or None.
Negation: objects the prompt says must not appear, comma-separated, or None.

Prompt: A white car and two dogs, one of them brown, in a garage without people
Objects: [('car', ['white']), ('dog', ['brown', None])]
Background: A realistic photo of a garage
Negation: people

Prompt: {prompt}
"""

LAYOUT_TEMPLATE = """You correct the layout of an image so that it matches a text-to-image prompt.
The image is square; boxes are [x, y, width, height] with the top-left corner at (0, 0) and sides in [0, 1].
Current objects are what a detector found, named "name #k". Make the fewest changes: keep a correct object as it
is (same name, same box), drop an object that should not be there, rename an object whose attribute is wrong,
move a box to fix a relation, add a new "name #k" with a box for a missing object. Keep every box inside the image.
Answer in exactly one line:
Updated Objects: a Python list of (name, [x, y, width, height]) tuples.

Prompt: {prompt}
Parsed objects: {objects}
Current Objects: {current}
"""

RETRY_MESSAGE = "Your answer could not be read ({why}). Answer again, exactly in the format asked for."


@dataclass
class Parse:
    """The prompt read by the planner: objects (name, count, attributes), background, negation."""

    objects: list[dict[str, Any]]
    background: str | None = None
    negation: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"objects": self.objects, "background": self.background, "negation": self.negation}


def _after(text: str, marker: str) -> str | None:
    match = re.search(rf"{marker}\s*:\s*(.*)", text, flags=re.IGNORECASE)
    return match.group(1).strip() if match else None


def _literal_list(text: str) -> list[Any]:
    """The first bracketed Python/JSON list in `text` (an answer may wrap it in prose or code fences)."""
    start = text.find("[")
    if start < 0:
        raise ValueError("no list")
    depth = 0
    for end in range(start, len(text)):
        depth += {"[": 1, "]": -1}.get(text[end], 0)
        if depth == 0:
            value = ast.literal_eval(text[start:end + 1].replace("null", "None"))
            if not isinstance(value, list):
                raise ValueError("not a list")
            return value
    raise ValueError("unclosed list")


def _none(text: str | None) -> str | None:
    text = (text or "").splitlines()[0].strip().strip("`").strip() if text else ""
    return None if text.lower() in ("", "none", "null", "n/a") else text


def read_parse(answer: str) -> Parse:
    """Step (a)'s answer as a `Parse`; ValueError says why an answer cannot be read."""
    objects_text = _after(answer, "Objects")
    if objects_text is None:
        raise ValueError("no 'Objects:' line")
    objects = []
    for entry in _literal_list(answer[answer.lower().index("objects"):]):
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[0], str)):
            raise ValueError(f"object entry {entry!r} is not (name, attributes)")
        attributes = entry[1] if isinstance(entry[1], (list, tuple)) else [entry[1]]
        attributes = [None if a is None or str(a).strip().lower() in ("", "none") else str(a).strip()
                      for a in attributes] or [None]
        objects.append({"name": entry[0].strip(), "count": len(attributes), "attributes": attributes})
    return Parse(objects, _none(_after(answer, "Background")), _none(_after(answer, "Negation")))


def read_layout(answer: str) -> list[dict[str, Any]]:
    """Step (b)'s answer as `[{name, box}]` with boxes clipped into the unit square; ValueError if unreadable."""
    marker = re.search(r"updated objects\s*:", answer, flags=re.IGNORECASE)
    if marker is None:
        raise ValueError("no 'Updated Objects:' line")
    layout = []
    for entry in _literal_list(answer[marker.end():]):
        if not (isinstance(entry, (tuple, list)) and len(entry) == 2 and isinstance(entry[0], str)
                and isinstance(entry[1], (tuple, list)) and len(entry[1]) == 4):
            raise ValueError(f"layout entry {entry!r} is not (name, [x, y, w, h])")
        x, y, w, h = (min(max(float(v), 0.0), 1.0) for v in entry[1])
        w, h = min(w, 1.0 - x), min(h, 1.0 - y)
        if w <= 0 or h <= 0:
            raise ValueError(f"layout entry {entry!r} has an empty box")
        layout.append({"name": entry[0].strip(), "box": [round(v, 4) for v in (x, y, w, h)]})
    return layout


class ChatBackend(Protocol):
    def identity(self) -> dict[str, Any]: ...

    def chat(self, messages: list[dict[str, str]], max_tokens: int) -> str: ...


class OpenAIChat:
    """An OpenAI-compatible `/chat/completions` endpoint (vLLM, llama.cpp, FastChat, OpenAI): temperature 0.

    The key comes from the environment variable `key_env` when each request is sent, so it never reaches the
    run identity, the answer cache or a record; an unset variable sends no Authorization header (local servers)."""

    def __init__(self, base_url: str, model: str, key_env: str = "OPENAI_API_KEY", timeout_s: float = 120.0) -> None:
        if not model:
            raise UserError("the HTTP planner needs a model name: --method-arg planner=NAME (as served).")
        self.base_url, self.model, self.key_env, self.timeout_s = base_url.rstrip("/"), model, key_env, timeout_s

    def identity(self) -> dict[str, Any]:
        return {"backend": "openai-http", "model": self.model, "base_url": self.base_url, "temperature": 0}

    def chat(self, messages: list[dict[str, str]], max_tokens: int) -> str:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": 0,
                           "max_tokens": max_tokens}).encode()
        headers = {"Content-Type": "application/json"}
        if key := os.environ.get(self.key_env):
            headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(f"{self.base_url}/chat/completions", data=body, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:  # noqa: S310 - user's URL
                return str(json.loads(response.read())["choices"][0]["message"]["content"] or "")
        except (urllib.error.URLError, OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            raise UserError(f"the planner endpoint {self.base_url} (model {self.model}) failed: "
                            f"{type(exc).__name__}: {exc}. Check --method-arg planner_url and that the server is up "
                            f"and OpenAI-compatible.") from None


class TransformersChat:
    """A local chat model through transformers: its chat template, greedy decoding, loaded on first use."""

    def __init__(self, model: str, revision: str | None = None, path: str | None = None, device: str | None = None,
                 dtype: str = "bf16") -> None:
        from imgbench.models.hub import WeightSource, resolve_all

        source = WeightSource(role="SLD planner LLM", repo_id=model or None, revision=revision, local_path=path,
                              probe="config.json", flag="--method-arg planner_path=DIR")
        self.resolved = resolve_all({"planner": source})["planner"]
        self.device, self.dtype = device, dtype
        self._model: Any = None
        self._tokenizer: Any = None

    def identity(self) -> dict[str, Any]:
        return {"backend": "transformers", "weights": self.resolved.identity(), "dtype": self.dtype,
                "decoding": "greedy"}

    def _load(self) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from imgbench.models.diffusers_base import resolve_device, torch_dtype

        kwargs = self.resolved.load_kwargs()
        try:
            self._tokenizer = AutoTokenizer.from_pretrained(self.resolved.location, **kwargs)
            model = AutoModelForCausalLM.from_pretrained(self.resolved.location, dtype=torch_dtype(self.dtype),
                                                         **kwargs)
        except OSError as exc:
            raise UserError(f"loading the planner {self.resolved.location} failed: {exc}. Pre-download it with "
                            f"`{self.resolved.source.download_command()}` or pass --method-arg planner_path=DIR.") \
                from exc
        self._model = model.to(resolve_device(self.device)).eval()

    def chat(self, messages: list[dict[str, str]], max_tokens: int) -> str:
        import torch

        if self._model is None:
            self._load()
        ids = self._tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                  return_dict=True).to(self._model.device)
        with torch.inference_mode():
            out = self._model.generate(**ids, max_new_tokens=max_tokens, do_sample=False,
                                       pad_token_id=self._tokenizer.pad_token_id or self._tokenizer.eos_token_id)
        return str(self._tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))


@dataclass
class Planner:
    """Both SLD steps over one back end, with bounded retries and an answer cache (see the module docstring)."""

    backend: ChatBackend
    cache_dir: Path | None = None
    max_tries: int = 3
    max_tokens: int = 512
    calls: int = field(default=0, init=False)
    """Back-end calls made (cache hits excluded): what the item's cost counts."""

    def identity(self) -> dict[str, Any]:
        return {**self.backend.identity(), "max_tries": self.max_tries, "max_tokens": self.max_tokens,
                "templates": sha256_json([PARSE_TEMPLATE, LAYOUT_TEMPLATE, RETRY_MESSAGE])[:16]}

    def _answer(self, messages: list[dict[str, str]]) -> str:
        key = sha256_json({"backend": self.backend.identity(), "max_tokens": self.max_tokens, "messages": messages})
        path = self.cache_dir / f"{key}.json" if self.cache_dir else None
        if path is not None and path.is_file():
            return str(json.loads(path.read_text())["answer"])
        answer = self.backend.chat(messages, self.max_tokens)
        self.calls += 1
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_json(path, {"messages": messages, "answer": answer})
        return answer

    def _ask(self, prompt: str, read: Any) -> tuple[Any, dict[str, Any]]:
        messages = [{"role": "user", "content": prompt}]
        answers, errors = [], []
        for _ in range(self.max_tries):
            answer = self._answer(messages)
            answers.append(answer)
            try:
                return read(answer), {"answers": answers, "errors": errors, "fallback": None}
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as exc:
                errors.append(str(exc) or type(exc).__name__)
                messages = [*messages, {"role": "assistant", "content": answer},
                            {"role": "user", "content": RETRY_MESSAGE.format(why=errors[-1])}]
        logger.info("planner answer unreadable after %d tries: %s", self.max_tries, errors[-1])
        return None, {"answers": answers, "errors": errors, "fallback": "no correction"}

    def parse(self, prompt: str) -> tuple[Parse | None, dict[str, Any]]:
        """Step (a): the parse, or None (and the record says so) after `max_tries` unreadable answers."""
        return self._ask(PARSE_TEMPLATE.format(prompt=prompt), read_parse)

    def correct(self, prompt: str, parse: Parse, current: list[dict[str, Any]]) -> tuple[
            list[dict[str, Any]] | None, dict[str, Any]]:
        """Step (b): the corrected layout, or None ("no correction") after `max_tries` unreadable answers."""
        objects = [(o["name"], o["attributes"]) for o in parse.objects]
        boxes = [(d["name"], d["box"]) for d in current]
        return self._ask(LAYOUT_TEMPLATE.format(prompt=prompt, objects=objects, current=boxes), read_layout)


def build_planner(planner: str | None, planner_url: str | None, planner_path: str | None, revision: str | None,
                  key_env: str, device: str | None, dtype: str, max_tries: int, max_tokens: int) -> Planner:
    """`planner_url` set → the HTTP back end serving model `planner`; else a local transformers chat model."""
    if isinstance(max_tries, bool) or not isinstance(max_tries, int) or max_tries < 1:
        raise UserError(f"planner_tries must be a whole number of at least 1, got {max_tries!r}.")
    if planner_url:
        return Planner(OpenAIChat(planner_url, planner or "", key_env), max_tries=max_tries, max_tokens=max_tokens)
    if not (planner or planner_path):
        raise UserError("method sld needs a planner LLM: --method-arg planner=HUB_ID (a local transformers chat "
                        "model, e.g. Qwen/Qwen2.5-7B-Instruct), or planner_path=DIR, or planner_url=URL with "
                        "planner=MODEL for an OpenAI-compatible server (key from $OPENAI_API_KEY or planner_key_env).")
    return Planner(TransformersChat(planner or "", revision, planner_path, device, dtype), max_tries=max_tries,
                   max_tokens=max_tokens)

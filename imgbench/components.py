"""Build models, methods and scorers from registry names plus user parameters.

Parameters are merged in a fixed order — registry YAML defaults, per-model method defaults,
then command-line `--model-arg` / `--method-arg` — and checked against the constructor's
signature, so a mistyped parameter is an error naming the valid ones, not silently ignored.
"""

from __future__ import annotations

import difflib
import inspect
import re
from typing import Any

from imgbench import catalog
from imgbench.api.method import Method
from imgbench.api.model import Model
from imgbench.api.registry import import_target
from imgbench.api.scorer import Scorer
from imgbench.api.specs import ComponentSpec
from imgbench.devices import check_device
from imgbench.errors import UserError
from imgbench.util.quiet import quiet_loaders


def _check_params(cls: type, params: dict[str, Any], what: str, flag: str) -> None:
    signature = inspect.signature(cls.__init__)
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    valid = [n for n, p in signature.parameters.items() if n != "self" and p.kind is not inspect.Parameter.VAR_KEYWORD]
    if accepts_any:
        return
    for key in params:
        if key not in valid:
            close = difflib.get_close_matches(key, valid, n=1)
            hint = f" — did you mean {close[0]!r}?" if close else "."
            raise UserError(f"{what} has no parameter {key!r}{hint} "
                            f"Valid {flag} keys: {', '.join(valid) or '(none)'}.")


def _type_names(annotation: Any) -> set[str]:
    """The names in a simple annotation ('int | None' → {'int', 'None'}); empty for anything richer."""
    if isinstance(annotation, str):
        return {part.strip() for part in annotation.split("|")}
    return {annotation.__name__} if isinstance(annotation, type) else set()


def _check_integers(cls: type, given: dict[str, Any], what: str, flag: str) -> None:
    """An integer parameter must be given an integer: int(2.5) would silently make `steps=2.5` a 2."""
    parameters = inspect.signature(cls.__init__).parameters
    for key, value in given.items():
        names = _type_names(parameters[key].annotation) if key in parameters else set()
        if "int" not in names or not names <= {"int", "None"}:
            continue
        if (value is None and "None" in names) or (isinstance(value, int) and not isinstance(value, bool)) or \
                (isinstance(value, str) and re.fullmatch(r"[+-]?\d+", value.strip())):  # API callers' "2"
            continue
        raise UserError(f"{what}: {flag} {key}={value} is not an integer; {key} takes a whole number "
                        f"(e.g. {flag} {key}=2).")


def instantiate(spec: ComponentSpec, params: dict[str, Any], flag: str, given: dict[str, Any] | None = None) -> Any:
    """Construct a component; a rejected value names what the user gave (`given`), not every default."""
    quiet_loaders()
    cls = import_target(spec.target, spec.needs, what=f"{spec.kind} {spec.name!r}")
    _check_params(cls, params, f"{spec.kind} {spec.name!r}", flag)
    _check_integers(cls, given or {}, f"{spec.kind} {spec.name!r}", flag)
    try:
        return cls(**params)
    except (TypeError, ValueError) as exc:
        shown = " ".join(f"{flag} {k}={v}" for k, v in (given or {}).items()) or f"no {flag} (defaults from its YAML)"
        raise UserError(f"{spec.kind} {spec.name!r} rejected its parameters: {exc}. You gave: {shown}.") from None


def build_model(name: str, model_args: dict[str, Any], device: str | None = None, dtype: str | None = None,
                model_path: str | None = None) -> tuple[ComponentSpec, Model]:
    spec = catalog.models().get(name).spec
    if device is not None:
        check_device(device)
    params = {**spec.params, **model_args}
    for key, value in (("device", device), ("dtype", dtype), ("model_path", model_path)):
        if value is not None:
            params[key] = value
    return spec, instantiate(spec, params, "--model-arg", model_args)


def resolve_method_params(method: ComponentSpec, model: ComponentSpec, method_args: dict[str, Any]) -> dict:
    defaults = catalog.method_defaults(method, model)
    return {**method.params, **(defaults.params if defaults else {}), **method.fixed, **method_args}


def build_method(name: str, model_spec: ComponentSpec, method_args: dict[str, Any]) -> tuple[ComponentSpec, Method]:
    spec = catalog.methods().get(name).spec
    params = resolve_method_params(spec, model_spec, method_args)
    return spec, instantiate(spec, params, "--method-arg", method_args)


def build_scorer(name: str, scorer_args: dict[str, Any] | None = None) -> Scorer:
    spec = catalog.scorers().get(name).spec
    return instantiate(spec, {**spec.params, **(scorer_args or {})}, "--scorer-arg", scorer_args)

"""Text normalisation shared by tasks, tags and CLI parsing."""

from __future__ import annotations

import re

from imgbench.errors import UserError

_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def slugify(text: str) -> str:
    """Tag slug: lowercase, non-alphanumeric runs become '-', trimmed ("Gary Marcus et al. " → gary-marcus-et-al)."""
    return _NON_ALNUM.sub("-", str(text).lower()).strip("-")


def as_bool(value: object, name: str) -> bool:
    """A yes/no parameter: a real bool or 0/1 (YAML and `k=v` flags already turn true/false into bools).

    `bool("maybe")` is True, so coercing with bool() would silently turn any typo into "on".
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise UserError(f"{name} must be true or false (or 1 / 0), got {value!r}.")


def parse_seeds(text: str) -> tuple[int, ...]:
    """Parse '0-3', '0,2,5' or '0-3,8' into an ordered tuple of distinct non-negative seeds."""
    seeds: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            if "-" in part:
                lo_text, hi_text = part.split("-", 1)
                lo, hi = int(lo_text), int(hi_text)
                if hi < lo:
                    raise UserError(f"seed range {part!r} is empty: write it low-high, e.g. '{hi}-{lo}'.")
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise UserError(f"cannot parse seeds {text!r}: use a range like '0-3' or a list like '0,1,5'.") from None
    if not seeds:
        raise UserError(f"no seeds in {text!r}: use a range like '0-3' or a list like '0,1,5'.")
    if any(s < 0 for s in seeds):
        raise UserError(f"seeds must be non-negative, got {text!r}.")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"seeds {text!r} repeat a value; each seed may appear once.")
    return tuple(seeds)


def parse_tags(values: list[str] | None) -> tuple[str, ...]:
    """Repeatable or comma-separated --tags, normalised to slugs."""
    tags: list[str] = []
    for value in values or []:
        tags.extend(slugify(v) for v in value.split(",") if v.strip())
    return tuple(dict.fromkeys(tags))


def parse_key_values(values: list[str] | None, flag: str) -> dict[str, object]:
    """Parse repeatable `k=v` flags; values are read as YAML scalars (0.2 → float, true → bool)."""
    import yaml

    result: dict[str, object] = {}
    for item in values or []:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UserError(f"{flag} expects key=value, got {item!r} (e.g. {flag} ip_scale=0.4).")
        try:
            result[key] = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            result[key] = raw
    return result

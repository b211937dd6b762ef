"""Text normalisation shared by tasks, tags and CLI parsing, and the limits on what a user may ask for."""

from __future__ import annotations

import re

from imgbench.errors import UserError

_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_UNSAFE_CHAR = re.compile(r"[/\\*?\[\]\x00-\x1f\x7f]")
_SEED_PART = re.compile(r"^(\d+)(?:\s*-\s*(\d+))?$")

MAX_SEED = 2**32 - 1
"""Largest seed: torch.Generator takes 0 … 2^64−1, but NumPy's legacy RandomState and many other generators stop
at 2^32−1, JSON readers lose integers above 2^53, and methods derive seeds by adding offsets (the shapes world's
re-roll adds 1,000,000); 0 … 2^32−1 is valid for every one of them."""

MAX_ITEMS = 1_000_000
"""Most (prompt, seed) items one invocation may ask for (and so most seeds): a larger request is a typo far more
often than a plan, and refusing it before any list is built beats a MemoryError 30 s later. Split bigger jobs
into several invocations (they extend the same run)."""

MAX_NAME = 100


def slugify(text: str) -> str:
    """Tag slug: lowercase, non-alphanumeric runs become '-', trimmed ("Gary Marcus et al. " → gary-marcus-et-al)."""
    return _NON_ALNUM.sub("-", str(text).lower()).strip("-")


def check_name(name: object, what: str) -> str:
    """A name that becomes one folder or file name under --output (task, model, method, scorer).

    No path separator, no `..`, no leading dot, no glob or control character: such a name can neither leave the
    output folder, nor nest a folder inside it, nor match other runs when the folders are scanned.
    """
    text = name if isinstance(name, str) else ""
    if not text or text[0] in ". " or ".." in text or _UNSAFE_CHAR.search(text) or len(text) > MAX_NAME:
        raise UserError(f"{what} {name!r} cannot name a folder: give a name without '/', '\\', '..', '*', '?', "
                        f"'[', ']' or control characters, not starting with '.' or a space, at most {MAX_NAME} "
                        f"characters.")
    return text


def as_bool(value: object, name: str) -> bool:
    """A yes/no parameter: a real bool or 0/1 (YAML and `k=v` flags already turn true/false into bools).

    `bool("maybe")` is True, so coercing with bool() would silently turn any typo into "on".
    """
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise UserError(f"{name} must be true or false (or 1 / 0), got {value!r}.")


def check_seeds(seeds: list[int] | tuple[int, ...], where: str) -> tuple[int, ...]:
    """Seeds as a run uses them: at least one, each in 0 … MAX_SEED, none repeated, at most MAX_ITEMS."""
    if not seeds:
        raise UserError(f"{where}: no seeds; give at least one, e.g. 0-3 (a list like [0, 1, 2, 3] in YAML).")
    if len(seeds) > MAX_ITEMS:
        raise UserError(f"{where}: {len(seeds):,} seeds; at most {MAX_ITEMS:,} items per invocation. Split the "
                        f"seeds over several invocations (they extend the same run).")
    bad = [s for s in seeds if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED]
    if bad:
        raise UserError(f"{where}: seed {bad[0]!r} is not an integer from 0 to {MAX_SEED} (seeds are non-negative "
                        f"and at most 2^32-1, the range every generator accepts).")
    if len(set(seeds)) != len(seeds):
        raise UserError(f"{where}: seeds repeat a value; each seed may appear once.")
    return tuple(seeds)


def parse_seeds(text: str) -> tuple[int, ...]:
    """Parse '0-3', '0,2,5' or '0-3,8' into an ordered tuple of distinct seeds in 0 … MAX_SEED.

    Counts are checked before any range is expanded, so '0-99999999' is refused at once.
    """
    spans: list[tuple[int, int]] = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        match = _SEED_PART.match(part)
        if not match:
            raise UserError(f"cannot parse seeds {text!r} ({part!r}): seeds are integers from 0 to {MAX_SEED}, "
                            f"written as a range like '0-3', a list like '0,1,5', or both ('0-3,8').")
        low = int(match.group(1))
        high = int(match.group(2)) if match.group(2) is not None else low
        if high < low:
            raise UserError(f"seed range {part!r} is empty: write it low-high, e.g. '{high}-{low}'.")
        if high > MAX_SEED:
            raise UserError(f"seed {high} in {text!r} is out of range: seeds go from 0 to {MAX_SEED} (2^32-1, the "
                            f"range every generator accepts).")
        spans.append((low, high))
    count = sum(high - low + 1 for low, high in spans)
    if count > MAX_ITEMS:
        raise UserError(f"--seeds {text!r} names {count:,} seeds; at most {MAX_ITEMS:,} items per invocation. Split "
                        f"the range over several invocations (they extend the same run).")
    return check_seeds([s for low, high in spans for s in range(low, high + 1)], f"--seeds {text!r}")


def parse_tags(values: list[str] | None) -> tuple[str, ...]:
    """Repeatable or comma-separated --tags, normalised to slugs."""
    tags: list[str] = []
    for value in values or []:
        for piece in (v for v in value.split(",") if v.strip()):
            if not slugify(piece):
                raise UserError(f"--tags {value!r}: {piece!r} has no letter or digit, so it names no tag.")
            tags.append(slugify(piece))
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

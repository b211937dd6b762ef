"""Every `imgbench ...` command example in README.md and docs/*.md runs and exits 0, except the excluded kinds
below, each with its reason: commands that need the network (hub weights, suite downloads) or a GPU, files
only a user has, or minutes of CPU. Examples run in document order, one fresh folder per page, in-process
(a subprocess per example would cost seconds of imports each)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from imgbench.cli import main

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

#: (pattern searched in the command, why it is not run). The first match wins.
EXCLUDED = [
    (r"--model[= ](sd15|sdxl|flux|\$M)", "a real diffusers model: hub weights (network) and, at useful speed, a GPU"),
    (r"--task[= ](drawbench|geneval|hpdv2|partiprompts|t2i-compbench|genai-bench|tifa|dpg-bench|pickapic|"
     r"imagereward-bench)", "a published suite: its files come from the network or ../shared/suites"),
    (r"--scorer[= ]\S*(clipscore|hpsv2|pickscore|imagereward|geneval|vqascore|aesthetic)",
     "a real scorer: hub weights (network)"),
    (r"--task[= ]shapes|--model[= ]shapes|^imgbench train shapes", "the shapes world: minutes of CPU per run"),
    (r"^imgbench train (img|dpo)", "training: minutes of CPU, or a GPU and Pick-a-Pic (network)"),
    (r"--method[= ]img\b", "IMG needs the MLLM weights (network) or the tiny ones a test builds"),
    (r"\.\./shared", "the published suite copies beside the clone (absent in a fresh clone)"),
    (r"\$[A-Z]|RUN_ID|/work/|~/|/data/", "a placeholder for the user's own values or folders"),
    (r"my_images/|my_prompts\.txt|cats\.txt", "the user's own image or prompt files"),
    (r"[0-9a-f]{12}", "names a run id printed in an example's output (ids change with the cache epoch)"),
    (r"--scorers? dummy,noisy", "`noisy` is added through the Python API on that page, not registered"),
    (r"^imgbench download", "fetches from the hub and the suites' sources (network); tests/test_download.py runs "
                            "it against a local mirror"),
]


def examples(page: Path) -> list[tuple[int, str]]:
    """(line, command) of each `imgbench` command in the page's code blocks (indented or fenced)."""
    found: list[tuple[int, str]] = []
    fenced, pending = False, ""
    for number, raw in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        if raw.strip().startswith("```"):
            fenced = not fenced
            continue
        if not (fenced or raw.startswith("    ")):
            continue
        line = f"{pending} {raw.strip()}".strip() if pending else raw.strip()
        pending = ""
        line = line.removeprefix("$ ")
        if line.endswith("\\"):
            pending = line[:-1].strip()
            continue
        if re.match(r"^(?:[A-Z_]+=\S+\s+)*imgbench\s", line):
            found.append((number, re.sub(r"\s+#.*$", "", line).removesuffix("&").strip()))
    return found


def reason_to_skip(command: str) -> str | None:
    plain = re.sub(r"^(?:[A-Z_]+=\S+\s+)*", "", command)
    return next((reason for pattern, reason in EXCLUDED if re.search(pattern, plain)), None)


def test_the_pages_have_examples_and_most_dummy_ones_run() -> None:
    every = [(p, c) for p in PAGES for _, c in examples(p)]
    assert len(every) > 40
    runnable = [c for _, c in every if reason_to_skip(c) is None]
    assert len(runnable) >= 12 and any("compare" in c for c in runnable) and any("plot" in c for c in runnable)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_command_examples_run(page: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("COLUMNS", "200")
    for number, command in examples(page):
        if reason_to_skip(command) is not None:
            continue
        argv = shlex.split(re.sub(r"^(?:[A-Z_]+=\S+\s+)*", "", command))[1:]
        assert main(argv) == 0, f"{page.name}:{number}: `{command}` failed"

"""Share of SLD's operations whose intended change shows in the final image, per kind, from a run's own records.

Each shapes-world SLD item records `info.operations_checked` (methods/sld/op_check.py: the checker reads the
round's output after the method is done with it; delete: the object is gone, add: one of that colour and shape
in or near its box, reposition: at the new box centre ±3 px, attribute: the new colour and shape at that place).
Usage, from the repo root: `python results/shapes/sld/operation_success.py RUN_DIR [RUN_DIR ...]`.
"""

import json
import sys
from collections import Counter
from pathlib import Path

KINDS = ("delete", "reposition", "attribute", "add")


def records(run: Path) -> list[dict]:
    return [json.loads(line) for path in sorted(run.glob("generations*.jsonl"))
            for line in path.read_text().splitlines() if line.strip()]


def summary(run: Path) -> tuple[int, int, Counter, Counter]:
    """(items, items with operations, operations per kind, operations that showed per kind)."""
    items = records(run)
    done, shown = Counter(), Counter()
    with_ops = 0
    for item in items:
        checked = item.get("info", {}).get("operations_checked", [])
        with_ops += bool(checked)
        for op in checked:
            done[op["kind"]] += 1
            shown[op["kind"]] += bool(op["ok"])
    return len(items), with_ops, done, shown


print("| run | items | items with operations | " + " | ".join(f"{k} (shown / done)" for k in KINDS) + " | all |")
print("|---|---|---|" + "---|" * (len(KINDS) + 1))
for arg in sys.argv[1:]:
    run = Path(arg)
    n, with_ops, done, shown = summary(run)
    cells = [f"{shown[k] / done[k]:.2f} ({shown[k]}/{done[k]})" if done[k] else "-" for k in KINDS]
    total, ok = sum(done.values()), sum(shown.values())
    print(f"| {run.name} | {n} | {with_ops} | " + " | ".join(cells) + f" | {ok / total:.2f} ({ok}/{total}) |"
          if total else f"| {run.name} | {n} | 0 | " + " | ".join(cells) + " | - |")

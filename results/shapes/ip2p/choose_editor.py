"""The rule that decides whether the third training cycle of shapes-ip2p (9,000 steps) replaces the shipped
6,000-step editor, from both editors' fidelity on val drawings (val captions, seeds 100-107, guidance 1/1):
results/shapes/ip2p/val-editor-6000.json and val-editor-9000.json.

Written before either val run: the issue asks for three things at once (edits that give the intended scene,
unnamed objects kept, "nothing to change" keeping the scene), so the editor with the higher mean of the three
val shares is shipped; a tie keeps the shipped one. Prints the table and the choice.
"""

import json
from pathlib import Path

HERE = Path(__file__).parent


def shares(report: dict) -> tuple[float, float, float]:
    edits, nothing = report["overall_edits"], report["per_kind"]["none"]
    return edits["editor_intended"], edits["editor_kept_unnamed"], nothing["editor_intended"]


print("| editor | edits | intended | kept unnamed | nothing keeps scene | mean |")
print("|---|---|---|---|---|---|")
means = {}
for steps in (6000, 9000):
    report = json.loads((HERE / f"val-editor-{steps}.json").read_text())
    report = report[0] if isinstance(report, list) else report
    values = shares(report)
    means[steps] = sum(values) / 3
    print(f"| {steps:,} steps | {report['overall_edits']['n']} | " + " | ".join(f"{v:.3f}" for v in values)
          + f" | {means[steps]:.3f} |")
print(f"chosen: the {9000 if means[9000] > means[6000] else 6000:,}-step editor")

"""The rule that picks shapes-ip2p's guidance scales from the val sweep (results/shapes/ip2p/val-guidance.json).

Written before the sweep ran: the setting whose edits most often give the intended scene on val drawings (val
captions, seeds 100-101), ties broken by how often "nothing to change" keeps the scene. Prints the table and the
choice, which methods/instruct_pix2pix/shapes.yaml must hold (tests/test_shapes_ip2p.py checks it does).
"""

import json
from pathlib import Path

HERE = Path(__file__).parent
reports = json.loads((HERE / "val-guidance.json").read_text())
reports = reports if isinstance(reports, list) else [reports]
print("| text scale | image scale | edits | intended | kept unnamed | nothing keeps scene |")
print("|---|---|---|---|---|---|")
for r in reports:
    e, nothing = r["overall_edits"], r["per_kind"]["none"].get("editor_intended", float("nan"))
    print(f"| {r['editor']['guidance_scale']:g} | {r['editor']['image_guidance_scale']:g} | {e['n']} | "
          f"{e['editor_intended']:.3f} | {e['editor_kept_unnamed']:.3f} | {nothing:.3f} |")
best = max(reports, key=lambda r: (r["overall_edits"]["editor_intended"],
                                   r["per_kind"]["none"].get("editor_intended", 0)))
print(f"chosen: guidance_scale {best['editor']['guidance_scale']:g}, image_guidance_scale "
      f"{best['editor']['image_guidance_scale']:g}")

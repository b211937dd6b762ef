"""SLD: Self-correcting LLM-controlled Diffusion (Wu, Lian, Gonzalez, Li, Darrell; CVPR 2024).

planner.py (the two LLM steps, two back ends, retries, cache), detector.py (OWLv2 + SAM through transformers),
operations.py (layout difference to delete / reposition / attribute / add), latent_ops.py (DDIM inversion,
latent composition, frozen-step re-generation) over backends.py (SD 1.5 pipeline or the shapes model), method.py
(the loop, rounds, artefacts, cost); the shapes world: shapes_planner.py (the rule planner), shapes_detect.py
(oracle / learned detector, masks, naming), op_check.py (per-operation success, a measurement). docs/sld.md.
"""

"""SLD: Self-correcting LLM-controlled Diffusion (Wu, Lian, Gonzalez, Li, Darrell; CVPR 2024).

planner.py (the two LLM steps, two back ends, retries, cache), detector.py (OWLv2 + SAM through transformers),
operations.py (layout difference to delete / reposition / attribute / add), latent_ops.py (DDIM inversion,
latent composition, frozen-step re-generation), method.py (the loop, rounds, artefacts, cost). docs/sld.md.
"""

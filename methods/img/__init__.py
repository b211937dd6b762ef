"""IMG: Implicit Multimodal Guidance (Guo et al., ICCV 2025, arXiv 2509.26231).

aligner.py (Implicit Aligner), objective.py (Iteratively Updated Preference Objective),
guidance.py (question templates and guidance sources), trainer.py / train_cli.py (IP-token-space
training), method.py (inference: initial image, guidance, aligner passes, re-generation).
"""

"""Diffusion-DPO (Wallace et al., CVPR 2024, arXiv 2311.12908): finetune a diffusers UNet on preference pairs.

`loss` holds the objective, `data` the pairs and their seeded order, `backbones` what turns a pair into UNet
inputs for each model family (SD 1.5, SDXL, the shapes world), `trainer` the resumable loop and the exported
UNet, `evaluate` the held-out implicit reward accuracy; `cli` and `eval_cli` are `imgbench train dpo` and
`imgbench train dpo-eval`. Nothing heavy is imported at package import.
"""

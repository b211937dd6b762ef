"""Instruct-Pix2Pix (Brooks et al., CVPR 2023) with instructions written by an MLLM (IMG paper, Fig. 3).

instruction.py (answer → one imperative instruction), editor.py (diffusers editors for SD 1.5 and
SDXL), method.py (initial image, question, instruction, edit, rounds).
"""

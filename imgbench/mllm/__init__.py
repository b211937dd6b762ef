"""Multimodal LLM wrappers shared by IMG, Instruct-Pix2Pix, SLD and the shapes world (DESIGN §4)."""

from imgbench.mllm.base import MLLM

__all__ = ["MLLM"]

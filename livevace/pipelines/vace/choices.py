"""The weights a vace pipeline can run on, by name: light enough for the command line to list
them without importing torch."""

TINY_RANDOM = "tiny-random"
"""Tiny random models: every path runs on a CPU (tests, trying the node without a GPU)."""
RANDOM_1_3B = "random-1.3b"
"""Random weights at the real Wan2.1-1.3B + VACE shapes on a CUDA GPU: the real speed."""
MODEL_CHOICES = ("auto", TINY_RANDOM, RANDOM_1_3B)

"""livevace: a live-performance node for causal VACE video generation."""

__version__ = "0.1.0"

"""spanattn: self-selected attention spans (Python side of the toolkit)."""

__version__ = "0.1.0"

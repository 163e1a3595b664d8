"""A scaling study of "prune a big network" versus "train a small network"."""

__version__ = "0.1.0"

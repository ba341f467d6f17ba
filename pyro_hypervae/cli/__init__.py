"""Stage 9, the command line (``pyro-hypervae``): ``main``."""

from .main import main

__all__ = ["main"]

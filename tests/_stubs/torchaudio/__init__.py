"""A stand-in for torchaudio, only so that DeepFilterNet's pure-Python `df` package (the test reference for the losses)
imports beside the CPU torch build, which PyPI's torchaudio does not import beside. Nothing here computes anything."""
from . import functional, backend
__all__ = ["functional", "backend"]

"""SSL methods, one small file each, registered by name in ``METHODS``."""

from medssl.methods import barlowtwins, byol, dclw, mocov2, simclr, simsiam, vicreg  # noqa: F401
from medssl.methods.base import METHODS, SSLMethod, build_method, register

STUDY_METHODS = ("simclr", "dclw", "simsiam", "vicreg")
"""The four methods of Chattopadhyay et al. (ICIP 2023)."""

__all__ = ["METHODS", "STUDY_METHODS", "SSLMethod", "build_method", "register"]

"""polyinv: inverse design of polymerization recipes from molar-mass distributions."""

__version__ = "0.1.0"

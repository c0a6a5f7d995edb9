"""Data: reading the study's files, scaling, and the Lightning data module."""

from polyinv.data.io import read_table
from polyinv.data.module import PolyDataModule

__all__ = ["read_table", "PolyDataModule"]

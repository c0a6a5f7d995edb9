"""Refinement of a model's answer against its forward model (docs/refine.md).

``solver``: the posterior over a row's recipe and its least-squares solution (:func:`refine`, :func:`candidates`);
``check``: the fit-time check on held-out training rows that decides whether predict refines, and with which
noise model (:func:`check_refinement`); ``answers``: the columns ``predict --refine`` / ``--candidates`` add.
"""

from polyinv.refine.answers import candidate_columns, model_refine, refine_columns
from polyinv.refine.check import check_refinement, tune
from polyinv.refine.solver import REFINED, NoiseModel, Refined, candidates, one_thread, refine, sqrt_shape

__all__ = [
    "REFINED",
    "NoiseModel",
    "Refined",
    "candidate_columns",
    "candidates",
    "check_refinement",
    "model_refine",
    "one_thread",
    "refine",
    "refine_columns",
    "sqrt_shape",
    "tune",
]

"""The multilayer perceptron (``model.kind: mlp``): dense layers over the scalars and the MMD."""

from __future__ import annotations

from collections.abc import Sequence

from polyinv.models.base import register
from polyinv.models.network import Activation, InverseRegressor
from polyinv.nn import MLPNet


@register
class MLP(InverseRegressor):
    """Dense network over the scalars and the MMD (its grid values or ``mmd_pcs`` PC scores)."""

    kind = "mlp"

    def __init__(
        self,
        widths: Sequence[int] = (256, 128, 64),
        activation: Activation = "relu",
        dropout: float | Sequence[float] = 0.0,
        **base,
    ) -> None:
        """
        Args:
            widths: units of each hidden layer
            activation: activation after each hidden layer
            dropout: dropout rate, one for all layers or one per layer (not with lbfgs)
        """
        super().__init__(**base)
        self.network = MLPNet(
            self.encoded_widths[0], self.n_side, self.n_targets, list(widths), activation, dropout
        )

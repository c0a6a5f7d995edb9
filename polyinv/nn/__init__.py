"""Plain torch building blocks: the networks, the censored loss and the in-model column scaler."""

from polyinv.nn.losses import CensoredMSE
from polyinv.nn.networks import ACTIVATIONS, CNNNet, MLPNet
from polyinv.nn.scaling import ColumnScaler

__all__ = ["ACTIVATIONS", "CNNNet", "CensoredMSE", "ColumnScaler", "MLPNet"]

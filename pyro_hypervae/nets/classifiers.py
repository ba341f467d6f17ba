"""Classifiers (and a regressor) that take their parameters as an argument: the
target networks of HyperGAN, run for a whole population of networks at once.

Each is a ``ParamNetwork`` whose parameter roles are its *layers*
(``layers``, in order): a layer generator produces every tensor of one role.
Shapes, for M networks::

    x        (N,) + x_shape           the same N points for every network
             or L + (N,) + x_shape    points of their own per network
    params   {name: L + shape}        L = (M,) for M networks, (1,) for one shared
    output   L + (N, out_dim)         logits (classifiers) or means (regressor)

``dropout`` > 0 drops hidden units at every call (MC dropout): networks that
share one set of parameters still draw masks of their own.

Registered in ``CLASSIFIERS``: ``conv`` (the HyperGAN paper's MNIST network),
``mlp`` (for small inputs such as the 8x8 digits), ``regression`` (1 -> 200 -> 1,
the paper's toy regression).
"""

from __future__ import annotations

import math
from typing import Sequence, Tuple

import torch.nn.functional as F
from pyro import distributions as dist
from torch import Tensor

from ..registry import CLASSIFIERS
from .layers import conv2d, linear
from .params import ParamNetwork, Params, bias, weight


def _pool(h: Tensor) -> Tensor:
    """2x2 max-pool of (M, N, C, H, W)."""
    M, N = h.shape[:2]
    out = F.max_pool2d(h.reshape((M * N,) + h.shape[2:]), 2)
    return out.reshape((M, N) + out.shape[1:])


class ParamClassifier(ParamNetwork):
    """Base: subclasses fill ``param_specs`` (role = layer) and ``_forward(x (M, N) + x_shape, params, dropout)``."""

    x_shape: Tuple[int, ...]
    out_dim: int

    @property
    def layers(self) -> Tuple[str, ...]:
        """The layer names (parameter roles), input to output."""
        return tuple(dict.fromkeys(s.role for s in self.param_specs.values()))

    def layer_names(self, layer: str) -> Tuple[str, ...]:
        """The parameter tensors of one layer."""
        return self.names(layer)

    def forward(self, x: Tensor, params: Params, dropout: float = 0.0) -> Tensor:
        """x (N,) + x_shape or L + (N,) + x_shape -> L + (N, out_dim)."""
        if tuple(x.shape[x.dim() - len(self.x_shape):]) != self.x_shape:
            raise ValueError(f"{self.name} takes points of shape {self.x_shape}, got a tensor of shape {tuple(x.shape)}")
        return self.run(lambda h, p: self._forward(h, p, dropout), x, len(self.x_shape), params, tuple(self.param_specs))

    __call__ = forward

    def observation(self, output: Tensor) -> dist.Distribution:
        """p(y | x, theta) from the network's output: a Categorical over classes."""
        return dist.Categorical(logits=output)

    def _forward(self, x: Tensor, p: Params, dropout: float) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError


def _drop(h: Tensor, rate: float) -> Tensor:
    return F.dropout(h, rate, training=True) if rate > 0 else h


@CLASSIFIERS.register("conv")
class ConvClassifier(ParamClassifier):
    """The HyperGAN paper's MNIST network: conv 1->32 5x5, leaky ReLU, max-pool 2,
    conv 32->32 5x5, leaky ReLU, max-pool 2, linear 512->10 (for 28x28 inputs).
    Layers: ``conv1``, ``conv2``, ``linear``."""

    def __init__(self, x_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10, channels: int = 32, kernel: int = 5):
        self.x_shape, self.out_dim = tuple(x_shape), int(num_classes)
        if len(self.x_shape) != 3:
            raise ValueError(f"the conv classifier takes images (C, H, W), got points of shape {self.x_shape}")
        C, H, W = self.x_shape
        side_h, side_w = ((H - kernel + 1) // 2 - kernel + 1) // 2, ((W - kernel + 1) // 2 - kernel + 1) // 2
        if side_h < 1 or side_w < 1:
            raise ValueError(f"images of {H}x{W} are too small for two {kernel}x{kernel} convolutions and pools; use the mlp classifier")
        self.kernel, self.features = kernel, channels * side_h * side_w
        self.param_specs = {
            "conv1_w": weight((channels, C, kernel, kernel), "conv1"), "conv1_b": bias(channels, "conv1"),
            "conv2_w": weight((channels, channels, kernel, kernel), "conv2"), "conv2_b": bias(channels, "conv2"),
            "linear_w": weight((self.out_dim, self.features), "linear"), "linear_b": bias(self.out_dim, "linear"),
        }

    def _forward(self, x, p, dropout):
        h = _pool(F.leaky_relu(conv2d(x, p["conv1_w"], p["conv1_b"], 1, 0)))
        h = _pool(F.leaky_relu(conv2d(_drop(h, dropout), p["conv2_w"], p["conv2_b"], 1, 0)))
        h = _drop(h.reshape(h.shape[:2] + (-1,)), dropout)
        return linear(h, p["linear_w"], p["linear_b"])


@CLASSIFIERS.register("mlp")
class MLPClassifier(ParamClassifier):
    """Flattened input -> ``hidden`` (leaky ReLU) -> classes. Layers: ``hidden``, ``output``."""

    def __init__(self, x_shape: Sequence[int], num_classes: int, hidden: int = 128):
        self.x_shape, self.out_dim = tuple(x_shape), int(num_classes)
        d = math.prod(self.x_shape)
        self.param_specs = {
            "hidden_w": weight((hidden, d), "hidden"), "hidden_b": bias(hidden, "hidden"),
            "output_w": weight((self.out_dim, hidden), "output"), "output_b": bias(self.out_dim, "output"),
        }

    def _forward(self, x, p, dropout):
        h = x.reshape(x.shape[:2] + (-1,))
        h = _drop(F.leaky_relu(linear(h, p["hidden_w"], p["hidden_b"])), dropout)
        return linear(h, p["output_w"], p["output_b"])


@CLASSIFIERS.register("regression")
class Regressor(ParamClassifier):
    """The paper's toy regression net: 1 -> ``hidden`` (ReLU) -> 1, with Gaussian
    observation noise of known std ``noise``. Layers: ``hidden``, ``output``."""

    def __init__(self, x_shape: Sequence[int] = (1,), num_classes: int = 1, hidden: int = 200, noise: float = 3.0):
        self.x_shape, self.out_dim, self.noise = tuple(x_shape), 1, float(noise)
        d = math.prod(self.x_shape)
        self.param_specs = {
            "hidden_w": weight((hidden, d), "hidden"), "hidden_b": bias(hidden, "hidden"),
            "output_w": weight((1, hidden), "output"), "output_b": bias(1, "output"),
        }

    def _forward(self, x, p, dropout):
        h = _drop(F.relu(linear(x.reshape(x.shape[:2] + (-1,)), p["hidden_w"], p["hidden_b"])), dropout)
        return linear(h, p["output_w"], p["output_b"])

    def observation(self, output: Tensor) -> dist.Distribution:
        """p(y | x, theta) = Normal(f(x), noise), y of shape L + (N,)."""
        return dist.Normal(output[..., 0], self.noise)


def make_classifier(name: str, x_shape: Sequence[int], num_classes: int, **kwargs) -> ParamClassifier:
    """A registered classifier by name, for points of ``x_shape`` and ``num_classes`` classes."""
    return CLASSIFIERS[name](tuple(x_shape), num_classes, **kwargs)

"""The matrix-network hyper-decoder g_gamma: u -> theta (every target parameter).

A shared dense trunk maps u to an r x r matrix H. Each target tensor then has its
own linear *matrix layer* W = U H V + B (U: m x r, V: r x n, B: m x n), where the
tensor is viewed as an m x n matrix (a bias of size m as m x 1, a conv filter
(O, C, k, k) as O x (C k k)). All matrix layers read the same H, in parallel.

``B`` is initialised as a freshly initialised target tensor and ``U H V`` as a
task-dependent perturbation of it whose scale is ``perturbation`` times the
tensor's initial scale (floored at 0.05, so biases, initialised at 0.01, and
wide layers can differ between tasks too), so a new HyperVAE starts as a set of related,
well-scaled target VAEs. The perturbation sets how far apart the tasks' models
start. On Fashion-MNIST (3,000 steps of the paper's protocol) 0.25 and 1.0 gave
test -ELBOs within seed-to-seed noise (252.2 / 247.3 against 249.9 / 250.6 nats
for seeds 0 / 1), 2.0 was no better (252.8, seed 0).
"""

from __future__ import annotations

import math
from typing import Iterable, Optional

import torch
from torch import Tensor, nn

from ..nets.layers import LowRank, low_rank_weight
from ..nets.params import ParamNetwork, Params


def matrix_shape(shape) -> tuple[int, int]:
    """How a target tensor of ``shape`` is viewed as a matrix (m, n)."""
    if len(shape) == 1:
        return (shape[0], 1)
    return (shape[0], math.prod(shape[1:]))


class MatrixLayer(nn.Module):
    """W = U H V + B for one target tensor: H (..., r, r) -> W (..., *shape)."""

    def __init__(self, shape, rank: int, init_std: float, perturbation: float = 0.25):
        super().__init__()
        self.shape = tuple(shape)
        m, n = matrix_shape(self.shape)
        self.U = nn.Parameter(torch.randn(m, rank) / math.sqrt(rank))
        # std(U H V) = sqrt(r) std(U) std(H) std(V); std(U) = 1/sqrt(r) and the trunk's H
        # has std ~0.25 at init for u ~ N(0, I): choose V so std(U H V) ~ perturbation * init_std
        v_std = perturbation * max(init_std, 0.05) / (0.25 * math.sqrt(rank))
        self.V = nn.Parameter(torch.randn(rank, n) * v_std)
        self.B = nn.Parameter(torch.randn(m, n) * init_std)

    def forward(self, H: Tensor) -> Tensor:
        lead, r = H.shape[:-2], H.shape[-1]
        # over all models at once, the product in the cheaper order (nets.layers.low_rank_weight)
        W = low_rank_weight(self.U, H.reshape(-1, r, r), self.V, self.B)
        return W.reshape(lead + self.shape)

    def factored(self, H: Tensor) -> LowRank:
        """The same weights W = U H V + B kept factored (``nets.layers.LowRank``):
        layers that take them never build the dense tensors when that is cheaper."""
        return LowRank(self.U, H, self.V, self.B, self.shape)


class MatrixHyperDecoder(nn.Module):
    """g_gamma(u): u (..., u_dim) -> {name: (..., *target.param_shapes[name])}.

    Args:
        target: the network whose parameters are generated (a target VAE).
        u_dim: dimension of the hyper-latent u.
        rank: r, the side of the shared matrix H (20 in the paper).
        trunk_width: width of the dense layer before H (a setting; see papers.md).
        perturbation: initial std of U H V relative to max(the target tensor's
            initial std, 0.05) (how different the tasks' models start).
        names: generate only these target tensors (all by default; HyperGAN's
            matrix generators each generate one layer's tensors).
    """

    def __init__(self, target: ParamNetwork, u_dim: int = 10, rank: int = 20, trunk_width: int = 100, perturbation: float = 0.25,
                 names: Optional[Iterable[str]] = None):
        super().__init__()
        self.target = target
        self.u_dim = u_dim
        self.rank = rank
        self.trunk = nn.Sequential(
            nn.Linear(u_dim, trunk_width), nn.ELU(), nn.Linear(trunk_width, rank * rank), nn.Tanh()
        )
        self.layers = nn.ModuleDict(
            {name: MatrixLayer(target.param_shapes[name], rank, target.init_std(name), perturbation)
             for name in (target.param_shapes if names is None else names)}
        )

    def forward(self, u: Tensor, names: Optional[Iterable[str]] = None, factored: bool = False) -> Params:
        """Generate the named target tensors (all of them by default). With
        ``factored``, the weights (not the biases) come as ``nets.layers.LowRank``,
        for the target's layers to apply without building them (training's hot
        path); the same numbers up to float rounding."""
        H = self.trunk(u).reshape(u.shape[:-1] + (self.rank, self.rank))
        names = self.layers.keys() if names is None else names
        if not factored:
            return {name: self.layers[name](H) for name in names}
        return {name: self.layers[name].factored(H) if len(self.layers[name].shape) > 1 else self.layers[name](H)
                for name in names}

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

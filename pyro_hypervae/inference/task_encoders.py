"""Task encoders: the networks of the amortized u-guide q(u | D_t) = N(loc(d_t), scale(d_t)^2).

Both encoders extract per-point features with the *target encoder's
architecture* (its own, learned, parameters, as in the paper) and differ in the
task summary d_t = s(D_t) they build from them:

* ``RandomPointEncoder`` (the paper): d_t is one randomly drawn point of the task.
  In eval mode (``encoder.eval()``) the draw is averaged out: loc and scale are
  the mean over every point of the task, a deterministic summary.
* ``SetEncoder``: permutation-invariant, d_t is the mean of the features of all
  the task's points in the batch, followed by a small MLP.

Shapes: x (T, N) + x_shape -> loc, scale each (T, u_dim).
"""

from __future__ import annotations

from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..nets.targets import TargetVAE
from ..registry import TASK_ENCODERS


class TaskEncoder(nn.Module):
    """Base class: per-point features from a copy of the target encoder's trunk."""

    def __init__(self, target: TargetVAE, u_dim: int):
        super().__init__()
        self.target = target
        self.u_dim = u_dim
        self.trunk = target.learnable_params(target.feature_names)

    def point_features(self, x: Tensor) -> Tensor:
        """x (T, N) + x_shape -> (T, N, feature_dim)."""
        return self.target.features(x, dict(self.trunk))

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError


def _heads(in_dim: int, u_dim: int) -> nn.Linear:
    head = nn.Linear(in_dim, 2 * u_dim)
    nn.init.zeros_(head.bias)
    head.weight.data.mul_(0.1)
    return head


def _loc_scale(out: Tensor) -> Tuple[Tensor, Tensor]:
    loc, pre_scale = out.chunk(2, dim=-1)
    return loc, F.softplus(pre_scale - 2.0) + 1e-4


@TASK_ENCODERS.register("random_point")
class RandomPointEncoder(TaskEncoder):
    """q(u | one random point of the task), the paper's task encoder."""

    def __init__(self, target: TargetVAE, u_dim: int):
        super().__init__(target, u_dim)
        self.head = _heads(target.feature_dim, u_dim)

    def per_point(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """q(u | x_i) for every point: (T, N, u_dim) each."""
        return _loc_scale(self.head(self.point_features(x)))

    def forward(self, x):
        if self.training:
            T, N = x.shape[:2]
            idx = torch.randint(N, (T,), device=x.device)
            x = x[torch.arange(T, device=x.device), idx].unsqueeze(1)
            loc, scale = self.per_point(x)
            return loc.squeeze(1), scale.squeeze(1)
        loc, scale = self.per_point(x)
        return loc.mean(1), scale.mean(1)


@TASK_ENCODERS.register("set")
class SetEncoder(TaskEncoder):
    """q(u | mean of the features of all the task's points), permutation invariant."""

    def __init__(self, target: TargetVAE, u_dim: int, hidden: int = 128):
        super().__init__(target, u_dim)
        self.pool_mlp = nn.Sequential(nn.Linear(target.feature_dim, hidden), nn.ELU())
        self.head = _heads(hidden, u_dim)

    def forward(self, x):
        pooled = self.point_features(x).mean(1)
        return _loc_scale(self.head(self.pool_mlp(pooled)))


def make_task_encoder(name: str, target: TargetVAE, u_dim: int) -> TaskEncoder:
    """A registered task encoder by name (``TASK_ENCODERS``: random_point, set)."""
    return TASK_ENCODERS[name](target, u_dim)

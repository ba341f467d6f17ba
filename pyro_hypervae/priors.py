"""Priors p(u) over the hyper-latent. A prior is an ``nn.Module`` whose call
returns a Pyro distribution with event shape (u_dim,) and empty batch shape; the
``tasks`` plate broadcasts it. Swap one on a model with ``hvae.prior = ...``."""

from __future__ import annotations

import torch
from pyro import distributions as dist
from torch import nn


class StandardNormalPrior(nn.Module):
    """p(u) = N(0, I), the paper's prior."""

    def __init__(self, u_dim: int):
        super().__init__()
        self.u_dim = u_dim
        self.register_buffer("_zero", torch.zeros(()))

    def forward(self) -> dist.Distribution:
        loc = self._zero.expand(self.u_dim)
        return dist.Normal(loc, torch.ones_like(loc)).to_event(1)

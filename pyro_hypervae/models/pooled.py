"""The pooled VAE: one target VAE for every task's points (the paper's "VAE")."""

from __future__ import annotations

from typing import Dict

import pyro
import torch
from torch import Tensor

from ..data.batches import TASK_DIM
from ..nets.estimator import estimate
from ..nets.targets import TargetVAE
from ..registry import MODELS
from .base import TargetHierarchy


@MODELS.register("vae")
class PooledVAE(TargetHierarchy):
    """The baseline: the same target VAE, plates and likelihood as HyperVAE, with
    one point-estimate theta shared by every task and no u."""

    label = "VAE (pooled)"
    task_summary = "one shared theta (pooled VAE)"
    param_formula = "encoder + decoder of one target VAE"

    def __init__(self, target: TargetVAE):
        super().__init__(target)
        self.theta = target.learnable_params()

    @classmethod
    def from_config(cls, config, target, data):
        return cls(target)

    def model(self, x: Tensor, task_idx: Tensor | None = None) -> None:
        self._check_batch(x)
        with pyro.plate("tasks", x.shape[0], dim=TASK_DIM):
            self._model_points(x, dict(self.theta))

    def guide(self, x: Tensor, task_idx: Tensor | None = None) -> None:
        self._check_batch(x)
        with pyro.plate("tasks", x.shape[0], dim=TASK_DIM):
            self._guide_points(x, dict(self.theta))

    @torch.no_grad()
    def task_theta(self, x_summary, task_idx=None):
        T = x_summary.shape[0]
        return {n: p.expand((T,) + p.shape[1:]) for n, p in self.theta.items()}

    @torch.no_grad()
    def outlier_scores(self, x: Tensor, num_samples: int = 8) -> Dict[str, Tensor]:
        """``neg_elbo``: the negative ELBO of x."""
        theta = {n: p.detach() for n, p in self.theta.items()}
        return {"neg_elbo": estimate(self.target, x.unsqueeze(0), theta, num_samples).neg_elbo[0]}

    def parts(self):
        return {"theta": list(self.theta.parameters())}

    def param_sides(self):
        t = self.target
        return t.num_params(t.encoder_names), t.num_params(t.decoder_names)

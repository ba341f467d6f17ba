"""Per-task VAEs: one complete, independent target VAE per task, all stacked
along a leading task dim and run by the batched target layers (grouped
convolutions, batched matmuls), so a batch of several tasks is one forward
pass with no Python loop over tasks. Tasks are indexed, as for MetaVAE."""

from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor

from ..nets.estimator import estimate
from ..nets.targets import TargetVAE
from ..registry import MODELS
from .base import TaskIndexedModel


@MODELS.register("pertask")
class PerTaskVAE(TaskIndexedModel):
    """One independent target VAE (encoder and decoder) per task, vectorised over tasks."""

    label = "per-task VAEs"
    task_summary = "the task's own VAE (indexed by task)"
    param_formula = "(encoder + decoder) x tasks"

    def __init__(self, target: TargetVAE, num_tasks: int):
        super().__init__(target, num_tasks)
        self.theta = target.learnable_params(copies=num_tasks)

    def _encoder_theta(self, idx):
        return self._rows({n: self.theta[n] for n in self.target.encoder_names}, idx)

    def _decoder_theta(self, idx):
        return self._rows({n: self.theta[n] for n in self.target.decoder_names}, idx)

    @torch.no_grad()
    def outlier_scores(self, x: Tensor, num_samples: int = 8) -> Dict[str, Tensor]:
        """``neg_elbo``: the smallest negative ELBO over the tasks' VAEs (a point
        is normal if some task explains it; not in the paper)."""
        theta = {n: p.detach() for n, p in self.theta.items()}
        return {"neg_elbo": estimate(self.target, x.unsqueeze(0), theta, num_samples).neg_elbo.min(0).values}

    def parts(self):
        return {"theta": list(self.theta.parameters())}

    def param_sides(self):
        t = self.target
        return t.num_params(t.encoder_names) * self.num_tasks, t.num_params(t.decoder_names) * self.num_tasks

    def param_counts(self):
        per = self.target.num_params()
        return {"target_per_task": per, "num_tasks": self.num_tasks, "total": per * self.num_tasks}

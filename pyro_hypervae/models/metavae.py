"""MetaVAE (after Wu, Choi, Goodman & Ermon, AAAI 2020, as the HyperVAE paper
uses it): one encoder q(z | x) shared by every task, one decoder p_t(x | z) per
task, on the same target VAE, plates, likelihood and ELBO as HyperVAE. Tasks are
indexed: model, guide and ``task_theta`` take the task index of each row of the
batch. Parameters are point estimates (no prior over theta); the u-KL is zero.

Note on Adam: with batches of one task (the paper's protocol), each step gives
gradients to one task's decoder only; the other tasks' rows get zero gradients
and Adam's momentum still moves them slightly, as in any shared optimiser.
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor

from ..nets.estimator import estimate
from ..nets.params import Params
from ..nets.targets import TargetVAE
from ..registry import MODELS
from .base import TaskIndexedModel


@MODELS.register("metavae")
class MetaVAE(TaskIndexedModel):
    """One shared encoder, one decoder per task (Wu et al. 2020, as in the HyperVAE paper)."""

    label = "MetaVAE"
    task_summary = "shared encoder; the task's own decoder (indexed by task)"
    param_formula = "shared encoder + one decoder per task"
    scores = ("neg_elbo", "kl")

    def __init__(self, target: TargetVAE, num_tasks: int):
        super().__init__(target, num_tasks)
        self.encoder = target.learnable_params(target.encoder_names)
        self.decoders = target.learnable_params(target.decoder_names, copies=num_tasks)

    def _encoder_theta(self, idx):
        return {n: p.expand((len(idx),) + p.shape[1:]) for n, p in self.encoder.items()}

    def _decoder_theta(self, idx):
        return self._rows(self.decoders, idx)

    @torch.no_grad()
    def all_decoders(self) -> Params:
        """Every task's decoder: {name: (num_tasks, *shape)}."""
        return {n: p.detach() for n, p in self.decoders.items()}

    @torch.no_grad()
    def outlier_scores(self, x: Tensor, num_samples: int = 8) -> Dict[str, Tensor]:
        """``neg_elbo``: the mean over the tasks' decoders of the negative ELBO
        (the paper's "MetaVAE (-EL)"); ``kl``: KL(q(z | x) || p(z)) under the
        shared encoder ("MetaVAE (KL)")."""
        enc = {n: p.detach() for n, p in self.encoder.items()}
        e = estimate(self.target, x.unsqueeze(0), enc | self.all_decoders(), num_samples)  # (num_tasks, n)
        return {"neg_elbo": e.neg_elbo.mean(0), "kl": e.kl_z[0]}

    def parts(self):
        return {"encoder": list(self.encoder.parameters()), "decoders": list(self.decoders.parameters())}

    def param_sides(self):
        t = self.target
        return t.num_params(t.encoder_names), t.num_params(t.decoder_names) * self.num_tasks

    def param_counts(self):
        enc = self.target.num_params(self.target.encoder_names)
        dec = self.target.num_params(self.target.decoder_names)
        return {"encoder": enc, "decoder_per_task": dec, "num_tasks": self.num_tasks, "decoders": dec * self.num_tasks}

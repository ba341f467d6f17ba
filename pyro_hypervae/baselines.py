"""Baselines of the paper's Table 1, on the same target VAE, plates, likelihood and ELBO.

* ``MetaVAE`` (after Wu, Choi, Goodman & Ermon, AAAI 2020, as the HyperVAE paper
  uses it): one encoder q(z | x) shared by every task, one decoder p_t(x | z) per
  task. Tasks are indexed, so its model and guide take the task index of each
  row of the batch: ``model(x, task_idx)``.
* ``PerTaskVAE``: one complete, independent target VAE per task, all stacked along
  a leading task dim and run by the batched target layers (grouped convolutions,
  batched matmuls): a batch of several tasks is one forward pass, with no Python
  loop over tasks.

Both read the ``task_idx`` that every caller passes (``model(x, task_idx)``,
``task_theta(x_summary, task_idx)``) and raise a clear error without it. Parameters are point estimates (no prior over theta), like the
pooled VAE; the u-KL is zero.

Note on Adam: with batches of one task (the paper's protocol), each step gives
gradients to one task's decoder only; the other tasks' rows get zero gradients
and Adam's momentum still moves them slightly, as in any shared optimiser.

``param_summary`` / ``param_table`` give the paper's Table 2 (parameter counts,
encoder side + decoder side).
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional

import pyro
import torch
from torch import Tensor, nn

from .model import TASK_DIM, HyperVAE, PooledVAE, TargetHierarchy
from .target import Params, TargetVAE


def _stacked(target: TargetVAE, names, num_tasks: int) -> nn.ParameterDict:
    """Independently initialised copies of the named tensors: {name: (num_tasks, *shape)}."""
    inits = [target.init_params() for _ in range(num_tasks)]
    return nn.ParameterDict({n: nn.Parameter(torch.stack([p[n] for p in inits])) for n in names})


class _IndexedTasks(TargetHierarchy):
    """Shared plumbing of models whose parameters are looked up by task index."""

    def __init__(self, target: TargetVAE, num_tasks: int):
        super().__init__(target)
        if num_tasks < 1:
            raise ValueError(f"num_tasks must be >= 1, got {num_tasks}")
        self.num_tasks = int(num_tasks)

    def _task_index(self, x: Tensor, task_idx: Optional[Tensor]) -> Tensor:
        if task_idx is None:
            raise ValueError(f"{type(self).__name__} has one set of parameters per task: pass the batch's task indices, model(x, task_idx)")
        task_idx = torch.as_tensor(task_idx, dtype=torch.long, device=x.device).reshape(-1)
        if len(task_idx) != x.shape[0]:
            raise ValueError(f"task_idx has {len(task_idx)} entries for a batch of {x.shape[0]} tasks")
        if len(task_idx) and (int(task_idx.min()) < 0 or int(task_idx.max()) >= self.num_tasks):
            raise ValueError(f"task indices must be in [0, {self.num_tasks}), got {task_idx.tolist()}")
        return task_idx

    @staticmethod
    def _rows(params: Mapping[str, Tensor], idx: Tensor) -> Params:
        return {n: p[idx] for n, p in params.items()}

    def _decoder_theta(self, idx: Tensor) -> Params:  # pragma: no cover - abstract
        raise NotImplementedError

    def _encoder_theta(self, idx: Tensor) -> Params:  # pragma: no cover - abstract
        raise NotImplementedError

    def model(self, x: Tensor, task_idx: Optional[Tensor] = None) -> None:
        """p(x, z) for a task batch x (T, N) + x_shape of tasks ``task_idx`` (T,)."""
        self._check_batch(x)
        idx = self._task_index(x, task_idx)
        with pyro.plate("tasks", x.shape[0], dim=TASK_DIM):
            self._model_points(x, self._decoder_theta(idx))

    def guide(self, x: Tensor, task_idx: Optional[Tensor] = None) -> None:
        self._check_batch(x)
        idx = self._task_index(x, task_idx)
        with pyro.plate("tasks", x.shape[0], dim=TASK_DIM):
            self._guide_points(x, self._encoder_theta(idx))

    @torch.no_grad()
    def task_theta(self, x_summary: Tensor, task_idx: Optional[Tensor] = None) -> Params:
        """Parameters of the tasks ``task_idx`` (one per row of x_summary); the
        summary points themselves are not used: these models index tasks."""
        idx = self._task_index(x_summary, task_idx)
        return self._encoder_theta(idx) | self._decoder_theta(idx)


class MetaVAE(_IndexedTasks):
    """One shared encoder, one decoder per task (Wu et al. 2020, as in the HyperVAE paper)."""

    kind = "metavae"
    task_summary = "shared encoder; the task's own decoder (indexed by task)"

    def __init__(self, target: TargetVAE, num_tasks: int):
        super().__init__(target, num_tasks)
        init = target.init_params()
        self.encoder = nn.ParameterDict({n: nn.Parameter(init[n].unsqueeze(0)) for n in target.encoder_names})
        self.decoders = _stacked(target, target.decoder_names, num_tasks)

    def _encoder_theta(self, idx):
        return {n: p.expand((len(idx),) + p.shape[1:]) for n, p in self.encoder.items()}

    def _decoder_theta(self, idx):
        return self._rows(self.decoders, idx)

    @torch.no_grad()
    def all_decoders(self) -> Params:
        """Every task's decoder: {name: (num_tasks, *shape)}."""
        return {n: p.detach() for n, p in self.decoders.items()}

    def param_counts(self):
        enc = self.target.num_params(self.target.encoder_names)
        dec = self.target.num_params(self.target.decoder_names)
        return {"encoder": enc, "decoder_per_task": dec, "num_tasks": self.num_tasks, "decoders": dec * self.num_tasks}


class PerTaskVAE(_IndexedTasks):
    """One independent target VAE (encoder and decoder) per task, vectorised over tasks."""

    kind = "pertask"
    task_summary = "the task's own VAE (indexed by task)"

    def __init__(self, target: TargetVAE, num_tasks: int):
        super().__init__(target, num_tasks)
        self.theta = _stacked(target, target.param_shapes.keys(), num_tasks)

    def _encoder_theta(self, idx):
        return self._rows({n: self.theta[n] for n in self.target.encoder_names}, idx)

    def _decoder_theta(self, idx):
        return self._rows({n: self.theta[n] for n in self.target.decoder_names}, idx)

    def param_counts(self):
        per = self.target.num_params()
        return {"target_per_task": per, "num_tasks": self.num_tasks, "total": per * self.num_tasks}


# --------------------------------------------------------------------------
# Parameter counts (the paper's Table 2)
# --------------------------------------------------------------------------
def param_summary(model: TargetHierarchy) -> Dict[str, int]:
    """Encoder-side and decoder-side learned parameters, their total, and the size
    of one target VAE, for any of the four models."""
    t = model.target
    enc_t, dec_t = t.num_params(t.encoder_names), t.num_params(t.decoder_names)
    if isinstance(model, HyperVAE):
        c = model.param_counts()
        enc, dec = c["u_guide"], c["hyper_decoder"] + c["prior"]
    elif isinstance(model, MetaVAE):
        enc, dec = enc_t, dec_t * model.num_tasks
    elif isinstance(model, PerTaskVAE):
        enc, dec = enc_t * model.num_tasks, dec_t * model.num_tasks
    elif isinstance(model, PooledVAE):
        enc, dec = enc_t, dec_t
    else:
        n = sum(p.numel() for p in model.parameters())
        return {"encoder": 0, "decoder": n, "total": n, "target_vae": enc_t + dec_t}
    assert enc + dec == sum(p.numel() for p in model.parameters()), "parameter bookkeeping is off"
    return {"encoder": enc, "decoder": dec, "total": enc + dec, "target_vae": enc_t + dec_t}


PAPER_PARAMS = {  # thousands, Table 2 of the workshop paper ("encoder + decoder")
    "vae": "445 + 445",
    "metavae": "445 + 445 x tasks",
    "hypervae": "445 + 445",
}

FORMULA = {
    "vae": "encoder + decoder of one target VAE",
    "metavae": "shared encoder + one decoder per task",
    "pertask": "(encoder + decoder) x tasks",
    "hypervae": "task encoder (u-guide) + matrix hyper-decoder",
}


def param_table(models: Mapping[str, TargetHierarchy]) -> str:
    """Markdown: learned parameters in thousands, encoder side + decoder side."""
    lines = [
        "| model | encoder side (K) | decoder side (K) | total (K) | one target VAE (K) | what | paper (K) |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, m in models.items():
        s = param_summary(m)
        lines.append(
            f"| {name} | {s['encoder'] / 1e3:.1f} | {s['decoder'] / 1e3:.1f} | {s['total'] / 1e3:.1f} | "
            f"{s['target_vae'] / 1e3:.1f} | {FORMULA.get(m.kind, '')} | {PAPER_PARAMS.get(m.kind, '-')} |"
        )
    return "\n".join(lines)

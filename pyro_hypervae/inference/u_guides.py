"""Guides over the hyper-latent u: q(u | D_t), amortized or one per task.

A u-guide is an ``nn.Module`` with this interface (what ``HyperVAE.guide``
calls): ``forward(x, task_idx=None)`` samples site ``"u"`` inside the caller's
``tasks`` plate and returns it, shape (..., T, 1, u_dim);
``posterior(x, task_idx=None)`` returns loc and scale (T, u_dim) for
evaluation. ``task_idx`` (T,) names the batch's tasks: amortized guides ignore
it, per-task guides look their parameters up with it. Swap one with
``hvae.u_guide = ...``. Registered in ``U_GUIDES`` (config ``hyper.u_guide``):

* ``amortized``: ``AmortizedUGuide``, q(u | D_t) from a task encoder
  (``RandomPointEncoder``, the paper, or ``SetEncoder``);
* ``auto_normal``: ``AutoNormalUGuide``, one N(loc_t, scale_t^2) per task (Pyro's
  ``AutoNormal`` over u); ``auto_delta``: ``AutoDeltaUGuide``, MAP (``AutoDelta``).
  They see every task of the dataset in one batch, tasks in order 0..T-1
  (``data.task_batch``), the tasks named by ``task_idx``, or the subset named
  with ``guide.select(tasks)``.

``for_model(hvae, data)`` builds a guide of the class for a model.
"""

from __future__ import annotations

from contextlib import contextmanager
from functools import partial
from typing import Optional, Sequence

import pyro
import torch
from pyro import distributions as dist
from pyro.infer.autoguide import AutoDelta, AutoNormal, init_to_value
from torch import Tensor, nn
from torch.distributions import transform_to

from ..data.batches import TASK_DIM
from ..data.tasks import TaskDataset
from ..registry import U_GUIDES
from .task_encoders import TaskEncoder


@U_GUIDES.register("amortized")
class AmortizedUGuide(nn.Module):
    """q(u | D_t) = N(loc, scale^2) from a task encoder, amortized over tasks:
    ``forward`` and ``posterior`` read x (T, N) + x_shape and ignore ``task_idx``."""

    def __init__(self, encoder: TaskEncoder):
        super().__init__()
        self.encoder = encoder

    @classmethod
    def for_model(cls, hvae: nn.Module, data: TaskDataset) -> nn.Module:
        """The amortized u-guide a HyperVAE is built with (its own task encoder)."""
        return hvae.u_guide

    def forward(self, x: Tensor, task_idx: Tensor | None = None) -> Tensor:
        loc, scale = self.encoder(x)  # (T, u_dim)
        return pyro.sample("u", dist.Normal(loc.unsqueeze(TASK_DIM), scale.unsqueeze(TASK_DIM)).to_event(1))

    @torch.no_grad()
    def posterior(self, x: Tensor, task_idx: Tensor | None = None):
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            return self.encoder(x)
        finally:
            self.encoder.train(was_training)


# --------------------------------------------------------------------------
# Per-task (non-amortized) u-guides built on Pyro autoguides
# --------------------------------------------------------------------------
def _u_model(num_tasks: int, u_dim: int, device: torch.device = torch.device("cpu")) -> None:
    """The u level alone, for the autoguides to read shapes from (on ``device``, where the
    guide's parameters are made)."""
    with pyro.plate("tasks", num_tasks, dim=TASK_DIM):
        pyro.sample("u", dist.Normal(torch.zeros(u_dim, device=device), 1.0).to_event(1))


class PerTaskUGuide(nn.Module):
    """Base of the per-task u-guides: one set of parameters per task, held by a
    Pyro autoguide over the u level alone (``self.auto``).

    ``forward(x, task_idx)`` looks the batch's tasks up by ``task_idx``; without
    it, x must hold every task in order (x.shape[0] == num_tasks), or the tasks
    named by ``select``. The autoguide's own ``forward`` cannot run
    inside the model's ``tasks`` plate (Pyro forbids a second plate of the same
    name), so these classes read the autoguide's parameters and sample site "u"
    themselves. Parameters are module-local (not in Pyro's global param store).
    """

    def __init__(self, num_tasks: int, u_dim: int, init_loc: Optional[Tensor] = None):
        super().__init__()
        if num_tasks < 1 or u_dim < 1:
            raise ValueError(f"num_tasks and u_dim must be >= 1, got {num_tasks} and {u_dim}")
        self.num_tasks, self.u_dim = num_tasks, u_dim
        init = torch.zeros(num_tasks, u_dim) if init_loc is None else torch.as_tensor(init_loc, dtype=torch.float32)
        if tuple(init.shape) != (num_tasks, u_dim):
            raise ValueError(f"init_loc must be (num_tasks, u_dim) = {(num_tasks, u_dim)}, got {tuple(init.shape)}")
        model = partial(_u_model, num_tasks, u_dim, init.device)  # the parameters start where init_loc is
        with pyro.settings.context(module_local_params=True):
            self.auto = self._autoguide(model, init_to_value(values={"u": init.detach().unsqueeze(TASK_DIM)}))
            self.auto()  # set up the parameters now, so optimisers see them
        self._tasks: Optional[Tensor] = None

    def _autoguide(self, model, init_loc_fn):  # pragma: no cover - abstract
        raise NotImplementedError

    @classmethod
    def for_model(cls, hvae: nn.Module, data: TaskDataset) -> "PerTaskUGuide":
        """One q(u_t) per task of ``data``, started at hvae's amortized posterior."""
        return cls.from_amortized(hvae, data)

    @classmethod
    def from_amortized(cls, hvae: nn.Module, data: TaskDataset, split: str = "train") -> "PerTaskUGuide":  # pragma: no cover - abstract
        raise NotImplementedError

    def loc_scale(self) -> tuple[Tensor, Tensor]:
        """loc and scale of every task's q(u_t): (num_tasks, u_dim) each."""
        raise NotImplementedError

    def _site(self, loc: Tensor, scale: Tensor) -> dist.Distribution:
        return dist.Normal(loc, scale).to_event(1)

    @contextmanager
    def select(self, tasks: Sequence[int] | Tensor):
        """Within this block, the tasks of a batch x are ``tasks`` (in that order)."""
        idx = torch.as_tensor(tasks, dtype=torch.long, device="cpu").reshape(-1)
        if len(idx) and (idx.min() < 0 or idx.max() >= self.num_tasks):
            raise IndexError(f"task index out of range: this guide has {self.num_tasks} tasks, got {idx.tolist()}")
        old, self._tasks = self._tasks, idx
        try:
            yield self
        finally:
            self._tasks = old

    def _for_batch(self, x: Tensor, task_idx: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        with pyro.settings.context(module_local_params=True):
            loc, scale = self.loc_scale()
        # the indices where the parameters are (the model's device)
        if task_idx is not None:
            idx = torch.as_tensor(task_idx, dtype=torch.long, device=loc.device).reshape(-1)
        else:
            idx = self._tasks.to(loc.device) if self._tasks is not None else None
        if idx is not None and len(idx) and (idx.min() < 0 or idx.max() >= self.num_tasks):
            raise IndexError(f"task index out of range: this guide has {self.num_tasks} tasks, got {idx.tolist()}")
        if idx is None:
            if x.shape[0] != self.num_tasks:
                raise ValueError(
                    f"this per-task guide holds {self.num_tasks} tasks but the batch has {x.shape[0]}; "
                    "pass every task in order (task_batch) or name them with guide.select(tasks)"
                )
            return loc, scale
        if len(idx) != x.shape[0]:
            raise ValueError(f"{len(idx)} task indices for a batch of {x.shape[0]} tasks")
        return loc[idx], scale[idx]

    def forward(self, x: Tensor, task_idx: Optional[Tensor] = None) -> Tensor:
        loc, scale = self._for_batch(x, task_idx)
        return pyro.sample("u", self._site(loc.unsqueeze(TASK_DIM), scale.unsqueeze(TASK_DIM)))

    @torch.no_grad()
    def posterior(self, x: Tensor, task_idx: Optional[Tensor] = None) -> tuple[Tensor, Tensor]:
        loc, scale = self._for_batch(x, task_idx)
        return loc.clone(), scale.clone()


@U_GUIDES.register("auto_normal")
class AutoNormalUGuide(PerTaskUGuide):
    """q(u_t) = N(loc_t, diag(scale_t^2)), free parameters per task (Pyro ``AutoNormal``).

    Args:
        num_tasks, u_dim: sizes; init_loc (num_tasks, u_dim) and init_scale (a
        float or (num_tasks, u_dim)) set the start, e.g. at the amortized
        posterior (``from_amortized``).
    """

    def __init__(self, num_tasks: int, u_dim: int, init_loc: Optional[Tensor] = None, init_scale: float | Tensor = 0.1):
        self._init_scale = init_scale
        super().__init__(num_tasks, u_dim, init_loc)
        if torch.is_tensor(init_scale):
            s = init_scale.detach().reshape(num_tasks, 1, u_dim).clamp_min(1e-4)
            with torch.no_grad():
                self.auto.scales.u_unconstrained.copy_(transform_to(AutoNormal.scale_constraint).inv(s))

    def _autoguide(self, model, init_loc_fn):
        scale = self._init_scale if not torch.is_tensor(self._init_scale) else 0.1
        return AutoNormal(model, init_loc_fn=init_loc_fn, init_scale=float(scale))

    def loc_scale(self):
        return self.auto.locs.u.squeeze(TASK_DIM), self.auto.scales.u.squeeze(TASK_DIM)

    @classmethod
    def from_amortized(cls, hvae: nn.Module, data: TaskDataset, split: str = "train") -> "AutoNormalUGuide":
        """Start every task at hvae's amortized posterior q(u | the task's ``split`` points)."""
        loc, scale = amortized_posterior(hvae, data, split)
        return cls(data.num_tasks, hvae.u_dim, loc, scale)


@U_GUIDES.register("auto_delta")
class AutoDeltaUGuide(PerTaskUGuide):
    """q(u_t) = delta(u - loc_t): MAP over u per task (Pyro ``AutoDelta``).

    Site "u" is a ``Delta``, whose log q is 0, so under ``MDLELBO`` the u term is
    -log p(u): MAP, not a bound on the description length. ``posterior`` returns
    scale 0.
    """

    def _autoguide(self, model, init_loc_fn):
        return AutoDelta(model, init_loc_fn=init_loc_fn)

    def loc_scale(self):
        loc = self.auto.u.squeeze(TASK_DIM)
        return loc, torch.zeros_like(loc)

    def _site(self, loc, scale):
        return dist.Delta(loc, event_dim=1)

    @classmethod
    def from_amortized(cls, hvae: nn.Module, data: TaskDataset, split: str = "train") -> "AutoDeltaUGuide":
        """Start every task at hvae's amortized posterior mean."""
        return cls(data.num_tasks, hvae.u_dim, amortized_posterior(hvae, data, split)[0])


@torch.no_grad()
def amortized_posterior(hvae: nn.Module, data: TaskDataset, split: str = "train") -> tuple[Tensor, Tensor]:
    """loc, scale (T, u_dim) of hvae's amortized q(u | D_t), D_t = task t's ``split``
    points, with the encoder in eval mode (the random-point encoder averages over
    the points, as ``evaluate`` does)."""
    if isinstance(hvae.u_guide, PerTaskUGuide):
        raise ValueError("hvae.u_guide is a per-task guide; install the amortized one (hvae.u_guide = AmortizedUGuide(...))")
    locs, scales = [], []
    for t in range(data.num_tasks):
        x = data.points(t, split)
        if len(x) == 0:
            raise ValueError(f"task {data.task_names[t]!r} has no {split!r} points")
        loc, scale = hvae.posterior_u(x.unsqueeze(0))
        locs.append(loc[0])
        scales.append(scale[0])
    return torch.stack(locs), torch.stack(scales)

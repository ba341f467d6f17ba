"""Checks of amortized inference: the hierarchical ELBO of each task under a
given q(u), the amortization gap (amortized guide against a per-task guide
fitted on the same points), and the amortized posterior against NUTS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence

import numpy as np
import pyro
import torch
from pyro import distributions as dist
from torch import Tensor, nn

from ..data.tasks import TaskDataset
from ..inference.nuts import NUTSResult, nuts_u, task_posterior
from ..inference.refit import fit_u_guide
from ..inference.u_guides import AutoNormalUGuide, PerTaskUGuide, amortized_posterior
from ..nets.draws import draw_normal
from ..nets.estimator import estimate


@torch.no_grad()
def task_elbo(hvae: nn.Module, xs: Sequence[Tensor], loc: Tensor, scale: Tensor, num_samples: int = 32, seed: int = 0) -> dict:
    """The hierarchical ELBO of each task under q(u_t) = N(loc_t, scale_t^2).

    For task t with points xs[t] (n_t,) + x_shape:
    ELBO_t = E_q(u)[ sum_i ELBO_target(x_i; theta(u)) ] - E_q(u)[log q(u) - log p(u)],
    with ``num_samples`` draws of u (one z per point and draw, KL on z in closed
    form). A zero scale means a point mass: its log q is taken as 0 (as Pyro's
    Delta). Draws are seeded, so two guides are compared on common random numbers.

    Returns, each (T,): ``elbo`` and ``data`` (minus the data term) in nats per
    point, ``kl_u`` in nats per task.
    """
    g = torch.Generator().manual_seed(seed)
    elbo, data_term, kl_u = [], [], []
    for t, x in enumerate(xs):
        u = loc[t] + scale[t] * draw_normal((num_samples, hvae.u_dim), loc, g)  # (K, u_dim), the same on every device
        theta = hvae.theta_of_u(u)  # {name: (K, *shape)}
        neg_data = estimate(hvae.target, x.unsqueeze(0), theta, generator=g).neg_elbo.sum(-1)  # (K,): one z per point and draw
        pos = scale[t] > 0
        log_q = dist.Normal(loc[t][pos], scale[t][pos]).log_prob(u[:, pos]).sum(-1) if pos.any() else u.new_zeros(num_samples)
        k = log_q - hvae.log_prior_u(u)
        n = len(x)
        elbo.append(-(neg_data + k).mean() / n)
        data_term.append(neg_data.mean() / n)
        kl_u.append(k.mean())
    return {"elbo": torch.stack(elbo).cpu(), "data": torch.stack(data_term).cpu(), "kl_u": torch.stack(kl_u).cpu()}


@dataclass
class GapReport:
    """The hierarchical ELBO per task, nats per point, under the amortized and the
    per-task guide: the MDL objective of the task's points, model cost included.
    gap = per_task - amortized (>= 0 up to Monte Carlo error when the per-task
    guide is fitted well) = ``data_gain`` - ``kl_u_cost``: what the per-task guide
    gains in fitting the points (the data term, what ``evaluate``'s neg_elbo
    sees) less what it pays in describing the model (KL(u) per point). A large
    ``data_gain`` with a small gap means a sharper q(u) that costs as many nats
    as it saves. Tensors are (T,); kl_u_* in nats per task, data_* and the gains
    in nats per point."""

    task_names: List[str]
    amortized: Tensor
    per_task: Tensor
    kl_u_amortized: Tensor
    kl_u_per_task: Tensor
    guide: nn.Module = field(repr=False)
    data_amortized: Optional[Tensor] = None  # minus the data term, nats per point
    data_per_task: Optional[Tensor] = None
    n_points: Optional[Tensor] = None

    @property
    def gap(self) -> Tensor:
        return self.per_task - self.amortized

    @property
    def data_gain(self) -> Tensor:
        """How much better the per-task guide fits the points, nats per point (model cost left out)."""
        return self.data_amortized - self.data_per_task

    @property
    def kl_u_cost(self) -> Tensor:
        """How much more the per-task guide's q(u) costs to describe, nats per point."""
        return (self.kl_u_per_task - self.kl_u_amortized) / self.n_points

    def as_dict(self) -> dict:
        rows = {
            name: {"amortized": a, "per_task": p, "gap": p - a, "kl_u_amortized": ka, "kl_u_per_task": kp}
            for name, a, p, ka, kp in zip(self.task_names, self.amortized.tolist(), self.per_task.tolist(), self.kl_u_amortized.tolist(), self.kl_u_per_task.tolist())
        }
        if self.data_amortized is not None:
            for name, d, c in zip(self.task_names, self.data_gain.tolist(), self.kl_u_cost.tolist()):
                rows[name] |= {"data_gain": d, "kl_u_cost": c}
        mean = {"amortized": self.amortized.mean().item(), "per_task": self.per_task.mean().item(), "gap": self.gap.mean().item()}
        if self.data_amortized is not None:
            mean |= {"data_gain": self.data_gain.mean().item(), "kl_u_cost": self.kl_u_cost.mean().item()}
        return {"tasks": rows, "mean": mean, "units": "nats per point (kl_u_amortized, kl_u_per_task: nats per task)"}

    def table(self) -> str:
        """Markdown: one row per task and the mean."""
        lines = ["| task | ELBO amortized | ELBO per-task | gap | = data gain | - KL(u) cost |", "|---|---|---|---|---|---|"]
        dg = self.data_gain.tolist() if self.data_amortized is not None else [float("nan")] * len(self.task_names)
        kc = self.kl_u_cost.tolist() if self.data_amortized is not None else [float("nan")] * len(self.task_names)
        for name, a, p, d, c in zip(self.task_names, self.amortized.tolist(), self.per_task.tolist(), dg, kc):
            lines.append(f"| {name} | {a:.3f} | {p:.3f} | {p - a:.3f} | {d:.3f} | {c:.3f} |")
        lines.append(f"| mean | {self.amortized.mean():.3f} | {self.per_task.mean():.3f} | {self.gap.mean():.3f} | "
                     f"{np.nanmean(dg):.3f} | {np.nanmean(kc):.3f} |")
        lines.append("")
        lines.append("nats per point; gap = data gain - KL(u) cost (the per-task guide's better fit of the points, less its dearer model)")
        return "\n".join(lines)


def amortization_gap(
    hvae: nn.Module,
    data: TaskDataset,
    per_task_guide: Optional[PerTaskUGuide] = None,
    split: str = "train",
    steps: int = 300,
    lr: float = 0.05,
    num_samples: int = 32,
    seed: int = 0,
) -> GapReport:
    """Per task, the ELBO (nats per point, over the task's ``split`` points) under
    hvae's amortized guide (installed as hvae.u_guide) vs under a per-task guide.

    Without ``per_task_guide``, an ``AutoNormalUGuide`` is started at the
    amortized posterior and fitted with ``fit_u_guide`` (``steps``, ``lr``) on the
    same points. hvae is not changed.
    """
    a_loc, a_scale = amortized_posterior(hvae, data, split)
    if per_task_guide is None:
        per_task_guide = AutoNormalUGuide(data.num_tasks, hvae.u_dim, a_loc, a_scale)
        fit_u_guide(hvae, data, per_task_guide, steps=steps, lr=lr, split=split, seed=seed)
    elif getattr(per_task_guide, "num_tasks", None) != data.num_tasks:
        raise ValueError(f"per_task_guide must be a PerTaskUGuide over the dataset's {data.num_tasks} tasks")
    with torch.no_grad(), pyro.settings.context(module_local_params=True):
        p_loc, p_scale = per_task_guide.loc_scale()
    xs = [data.points(t, split) for t in range(data.num_tasks)]
    a = task_elbo(hvae, xs, a_loc, a_scale, num_samples, seed)
    p = task_elbo(hvae, xs, p_loc.detach(), p_scale.detach(), num_samples, seed)
    n = torch.tensor([float(len(x)) for x in xs], device="cpu")
    return GapReport(list(data.task_names), a["elbo"], p["elbo"], a["kl_u"], p["kl_u"], per_task_guide, a["data"], p["data"], n)


def compare_to_nuts(hvae: nn.Module, data: TaskDataset, task: int, result: Optional[NUTSResult] = None, **nuts_kwargs) -> dict:
    """Is the posterior mean of u for ``task`` under hvae's u-guide (the amortized
    one, or any other installed) inside the NUTS 94% HDI, per u dimension? Runs
    ``nuts_u`` unless a ``result`` is given.

    Returns a dict of per-dimension lists (amortized_mean, amortized_scale,
    nuts_mean, nuts_std, hdi_low, hdi_high, inside, r_hat, ess) and the
    summaries fraction_inside, max_r_hat, divergences, wall_s.
    """
    task = data.task_index(task)
    if result is None:
        result = nuts_u(hvae, data, task, **nuts_kwargs)
    elif result.task != task:
        raise ValueError(f"result is for task {result.task}, not {task}")
    x = data.points(task, result.split)[: result.n_points]  # the points NUTS saw
    loc, scale = (t.cpu() for t in task_posterior(hvae, x, task))
    mean, std = (t[0] for t in result.posterior())
    low, high = (torch.as_tensor(result.hdi[:, i], dtype=loc.dtype, device="cpu") for i in (0, 1))
    inside = (low <= loc) & (loc <= high)
    return {
        "task": data.task_names[task],
        "amortized_mean": loc.tolist(),
        "amortized_scale": scale.tolist(),
        "nuts_mean": mean.tolist(),
        "nuts_std": std.tolist(),
        "hdi_low": low.tolist(),
        "hdi_high": high.tolist(),
        "inside": inside.tolist(),
        "r_hat": result.r_hat.tolist(),
        "ess": result.ess.tolist(),
        "fraction_inside": inside.float().mean().item(),
        "max_r_hat": float(np.max(result.r_hat)),
        "divergences": result.divergences,
        "wall_s": result.wall_s,
    }

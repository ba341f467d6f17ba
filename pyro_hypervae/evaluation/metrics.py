"""Evaluation: the paper's Table 1 columns per task and averaged.

For task t, theta_t is decoded from the posterior mean of q(u | D_t), where
the task summary D_t is, for ``summary="all"`` (the default), all the task's
*training* points (the random-point encoder then averages loc and scale over
every training point), or, for ``summary="point"`` (the paper's protocol), one
random training point, drawn R times with the numbers averaged over the draws.
The evaluated points never enter the summary. Models without a hyper-latent
use their one theta per task. Then, for each evaluated point x, in nats:

* neg_elbo: E_q(z|x)[-log p(x|z, theta_t)] + KL(q(z|x) || p(z))
* nll: -log p(x | theta_t) by importance sampling with q(z|x) as proposal and K
  samples: -log (1/K sum_k p(x|z_k) p(z_k) / q(z_k|x))
* kl_z: KL(q(z|x) || p(z)), closed form
* kl_u: KL(q(u|D_t) || p(u)) of the same q(u | D_t) that decoded theta,
  divided by the number of evaluated points of the task (the model's
  description length per point); ``kl_u_task`` is the total.

Devices: the numbers are computed where the model is (``device=`` moves it
first; ``inference.device``); the points stay on the CPU and are moved there a
task at a time; the per-point numbers come back to the CPU. The importance
samples are drawn on the CPU (``nets.estimator``), so the numbers agree across
devices up to float rounding.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

import numpy as np
import torch
from torch import Tensor

from ..data.tasks import TaskDataset
from ..inference.device import place
from .baselines import beaten_by, reference_baselines
from ..nets.estimator import estimate
from ..nets.params import Params


@torch.no_grad()
def point_metrics(model, x: Tensor, theta: Params, num_samples: int = 1024, chunk: int = 128) -> Dict[str, Tensor]:
    """Per-point neg_elbo, nll, kl_z, each (n,), for points x (n,) + x_shape under
    one target VAE's parameters theta {name: (1, *shape)}, or under one VAE per
    point, theta {name: (n, *shape)}; K = ``num_samples`` importance samples drawn
    ``chunk`` at a time (``nets.estimator.estimate``). Computed where theta is (x is
    moved there); the results are on the CPU."""
    per_point = next(iter(theta.values())).shape[0] > 1 or len(x) == 1
    x = x.unsqueeze(1) if per_point else x.unsqueeze(0)  # (n, 1) or (1, n) + x_shape: (models, points)
    e = estimate(model.target, x, theta, num_samples, log_likelihood=True, chunk=chunk)
    return {"neg_elbo": e.neg_elbo.reshape(-1).cpu(), "nll": -e.log_lik.reshape(-1).cpu(), "kl_z": e.kl_z.reshape(-1).cpu()}


SUMMARIES = ("all", "point")


def _summaries(train: Tensor, summary: str, draws: int, generator: torch.Generator) -> List[Tensor]:
    """The task summaries q(u | D_t) is conditioned on, each (1, n) + x_shape:
    every training point ("all"), or ``draws`` random training points, one at a
    time ("point"; drawn without replacement while there are enough)."""
    if summary == "all":
        return [train.unsqueeze(0)]
    n = len(train)
    pick = (torch.randperm(n, generator=generator, device="cpu")[:draws] if draws <= n
            else torch.randint(n, (draws,), generator=generator, device="cpu"))
    return [train[i : i + 1].unsqueeze(0) for i in pick.tolist()]


def _mean_std(rows: List[Dict[str, float]], keys) -> Tuple[Dict[str, float], Dict[str, float]]:
    a = {k: np.array([r[k] for r in rows]) for k in keys}
    return {k: float(v.mean()) for k, v in a.items()}, {k: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for k, v in a.items()}


@torch.no_grad()
def evaluate(model, data: TaskDataset, split: str = "test", num_samples: int = 1024, summary: str = "all",
             draws: int = 1, seed: int = 0, baselines: bool = True, device=None) -> dict:
    """Metrics per task and their mean over tasks, in nats per point (the module doc).

    Args:
        split: the points evaluated ("test", or "val" to choose settings on).
        summary: what each task's q(u | D_t) is conditioned on, for a model
            with a hyper-latent: ``"all"`` its training points (the default;
            the random-point encoder then averages loc and scale over all of
            them), or ``"point"``, the paper's protocol: one random training
            point x_r of the task, ``draws`` times, theta decoded from the mean
            of q(u | x_r) and KL(u) of that same q(u | x_r). Models without u
            have one theta per task whatever the summary.
        draws: R, random points per task for ``"point"`` (seeded by ``seed``).
        baselines: also the NLL of trivial models on the same points
            (``evaluation.baselines``), under ``"baselines"``, and a warning in
            ``"warnings"`` for each one the model does not beat.
        device: where to compute (``cpu``, ``cuda``, ...): the model is moved
            there first (in place); None: where it is.

    With R > 1, every number is the mean over the R draws; ``spread`` (and each
    task's ``std_over_draws``) is the standard deviation over the draws of the
    mean over tasks (of the task's number).
    """
    if summary not in SUMMARIES:
        raise ValueError(f"summary must be one of {list(SUMMARIES)}, got {summary!r}")
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    if num_samples < 1:
        raise ValueError(f"the importance samples (--eval-samples) must be at least 1, got {num_samples}")
    place(model, device)
    model.eval()
    one_theta = summary == "all" or model.u_dim == 0
    g = torch.Generator().manual_seed(seed)
    tasks, rows_by_task = {}, {}
    for t, name in enumerate(data.task_names):
        x_eval = data.points(t, split)
        if len(x_eval) == 0:
            continue
        idx = torch.tensor([t], device="cpu")
        rows = []
        for x_summary in _summaries(data.points(t, "train"), "all" if one_theta else "point", draws, g):
            theta = model.task_theta(x_summary, idx)  # {name: (1, *shape)}
            m = {k: v.mean().item() for k, v in point_metrics(model, x_eval, theta, num_samples).items()}
            kl_u = model.kl_u(x_summary, idx)  # of the same q(u) that decoded theta; None: the model has no u
            if kl_u is not None:
                m["kl_u"] = kl_u[0].item() / len(x_eval)
                m["kl_u_task"] = kl_u[0].item()
            rows.append(m)
        m, std = _mean_std(rows, rows[0].keys())
        tasks[name] = m | {"n_points": len(x_eval), "draws": len(rows)} | ({"std_over_draws": std} if len(rows) > 1 else {})
        rows_by_task[name] = rows
    if not tasks:
        raise ValueError(f"no {split} points to evaluate in {data.name}")
    keys = [k for k in ("nll", "neg_elbo", "kl_z", "kl_u", "kl_u_task") if all(k in m for m in tasks.values())]
    mean = {k: sum(m[k] for m in tasks.values()) / len(tasks) for k in keys if k != "kl_u_task"}
    R = len(next(iter(rows_by_task.values())))
    refs = reference_baselines(data, split, binary=model.target.likelihood.discrete) if baselines else {}
    per_draw = [{k: float(np.mean([rows[r][k] for rows in rows_by_task.values()])) for k in keys} for r in range(R)]
    return {
        "model": model.name,
        "dataset": data.name,
        "split": split,
        "num_samples": num_samples,
        "summary": "all" if one_theta else "point",
        "draws": R,
        "task_summary": model.task_summary if one_theta else f"posterior mean of q(u | one random training point of the task), {R} draws",
        "binarization": data.info.get("binarization"),
        "tasks": tasks,
        "mean": mean,
        "spread": _mean_std(per_draw, keys)[1] if R > 1 else None,
        "units": "nats per point, mean over tasks (kl_u_task: nats per task)",
        "baselines": refs,
        "warnings": beaten_by(mean["nll"], refs),
    }


def format_table(results: list[dict]) -> str:
    """A markdown table of mean metrics, one row per result."""
    cols = ["nll", "neg_elbo", "kl_z", "kl_u"]
    lines = ["| model | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in results:
        cells = [f"{r['mean'][c]:.2f}" if c in r["mean"] else "-" for c in cols]
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

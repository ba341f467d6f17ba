"""Evaluation: the paper's Table 1 columns per task and averaged.

For task t, theta_t is decoded from the posterior mean of q(u | D_t) where the
task summary D_t is the task's *training* points (for the random-point encoder
the mean is averaged over every training point as the random draw); the pooled
VAE uses its single theta. Then, for each evaluated point x, in nats:

* neg_elbo: E_q(z|x)[-log p(x|z, theta_t)] + KL(q(z|x) || p(z))
* nll: -log p(x | theta_t) by importance sampling with q(z|x) as proposal and K
  samples: -log (1/K sum_k p(x|z_k) p(z_k) / q(z_k|x))
* kl_z: KL(q(z|x) || p(z)), closed form
* kl_u: KL(q(u|D_t) || p(u)) divided by the number of evaluated points of the
  task (the model's description length per point); ``kl_u_task`` is the total.
"""

from __future__ import annotations

from typing import Dict

import torch
from torch import Tensor

from ..data.tasks import TaskDataset
from ..nets.estimator import estimate
from ..nets.params import Params


@torch.no_grad()
def point_metrics(model, x: Tensor, theta: Params, num_samples: int = 1024, chunk: int = 128) -> Dict[str, Tensor]:
    """Per-point neg_elbo, nll, kl_z, each (n,), for points x (n,) + x_shape under
    one target VAE's parameters theta {name: (1, *shape)}, or under one VAE per
    point, theta {name: (n, *shape)}; K = ``num_samples`` importance samples drawn
    ``chunk`` at a time (``nets.estimator.estimate``)."""
    per_point = next(iter(theta.values())).shape[0] > 1 or len(x) == 1
    x = x.unsqueeze(1) if per_point else x.unsqueeze(0)  # (n, 1) or (1, n) + x_shape: (models, points)
    e = estimate(model.target, x, theta, num_samples, log_likelihood=True, chunk=chunk)
    return {"neg_elbo": e.neg_elbo.reshape(-1), "nll": -e.log_lik.reshape(-1), "kl_z": e.kl_z.reshape(-1)}


@torch.no_grad()
def evaluate(model, data: TaskDataset, split: str = "test", num_samples: int = 1024) -> dict:
    """Metrics per task and their mean over tasks, in nats per point."""
    model.eval()
    tasks = {}
    for t, name in enumerate(data.task_names):
        x_eval = data.points(t, split)
        if len(x_eval) == 0:
            continue
        summary = data.points(t, "train").unsqueeze(0)
        theta = model.task_theta(summary, torch.tensor([t]))  # {name: (1, *shape)}
        m = {k: v.mean().item() for k, v in point_metrics(model, x_eval, theta, num_samples).items()}
        kl_u = model.kl_u(summary, torch.tensor([t]))  # None: the model has no u
        if kl_u is not None:
            m["kl_u"] = kl_u[0].item() / len(x_eval)
            m["kl_u_task"] = kl_u[0].item()
        m["n_points"] = len(x_eval)
        tasks[name] = m
    if not tasks:
        raise ValueError(f"no {split} points to evaluate in {data.name}")
    keys = [k for k in ("nll", "neg_elbo", "kl_z", "kl_u") if all(k in m for m in tasks.values())]
    mean = {k: sum(m[k] for m in tasks.values()) / len(tasks) for k in keys}
    return {
        "model": model.name,
        "dataset": data.name,
        "split": split,
        "num_samples": num_samples,
        "task_summary": model.task_summary,
        "binarization": data.info.get("binarization"),
        "tasks": tasks,
        "mean": mean,
    }


def format_table(results: list[dict]) -> str:
    """A markdown table of mean metrics, one row per result."""
    cols = ["nll", "neg_elbo", "kl_z", "kl_u"]
    lines = ["| model | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in results:
        cells = [f"{r['mean'][c]:.2f}" if c in r["mean"] else "-" for c in cols]
        lines.append(f"| {r['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

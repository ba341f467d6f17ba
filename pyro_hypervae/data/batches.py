"""Task batches: what the model and guide take, and the plate layout they share.

A task batch is ``x`` of shape (T, N) + x_shape: T tasks with N points each.
Every model and guide puts the tasks in a Pyro plate at dim ``TASK_DIM`` (-2)
and the points in a plate at ``POINT_DIM`` (-1), so a hyper-latent u has shape
(..., T, 1, u_dim) and a target latent z (..., T, N, z_dim).

* ``TaskSampler`` (defined beside ``TaskDataset``, whose ``sampler`` builds it):
  random task batches for SVI (``fit``, ``refit``);
* ``task_batch``: every point of every task in one padded batch, with its mask.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .tasks import TaskDataset, TaskSampler  # TaskSampler: the in-memory data's own batches

TASK_DIM, POINT_DIM = -2, -1
MAX_PLATE_NESTING = 2


def task_batch(data: TaskDataset, split: str = "train") -> tuple[Tensor, Tensor]:
    """Every point of every task in one batch.

    Returns x (T, n_max) + x_shape, tasks in order, and mask (T, n_max), True on
    real points. A task with fewer than n_max points is padded by repeating its
    own points; mask the padding out of the likelihood (``inference.elbo.mask_points``).
    """
    xs = [data.points(t, split) for t in range(data.num_tasks)]
    empty = [data.task_names[t] for t, x in enumerate(xs) if len(x) == 0]
    if empty:
        raise ValueError(f"task(s) {empty} have no {split!r} points")
    n_max = max(len(x) for x in xs)
    x = torch.stack([xt[torch.arange(n_max) % len(xt)] for xt in xs])
    mask = torch.stack([torch.arange(n_max) < len(xt) for xt in xs])
    return x, mask

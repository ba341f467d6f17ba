"""Task batches: what the model and guide take, and the plate layout they share.

A task batch is ``x`` of shape (T, N) + x_shape: T tasks with N points each.
Every model and guide puts the tasks in a Pyro plate at dim ``TASK_DIM`` (-2)
and the points in a plate at ``POINT_DIM`` (-1), so a hyper-latent u has shape
(..., T, 1, u_dim) and a target latent z (..., T, N, z_dim).

* ``TaskSampler``: random task batches for SVI (``fit``, ``refit``);
* ``task_batch``: every point of every task in one padded batch, with its mask.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .tasks import DataError, TaskDataset

TASK_DIM, POINT_DIM = -2, -1
MAX_PLATE_NESTING = 2


class TaskSampler:
    """Draws task batches from a split: ``sample()`` -> (x (T, N) + x_shape, task_idx (T,)).

    Tasks are drawn without replacement; points within a task without replacement
    when the task has at least N of them, else with replacement. Sampling is
    vectorised over tasks and seeded by ``generator``.
    """

    def __init__(self, data: TaskDataset, tasks_per_batch: int, points_per_task: int, split: str = "train", generator: Optional[torch.Generator] = None):
        if tasks_per_batch < 1 or points_per_task < 1:
            raise ValueError("tasks_per_batch and points_per_task must be >= 1")
        self.data = data
        self.T = min(tasks_per_batch, data.num_tasks)
        self.N = points_per_task
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        index_lists = []
        for t in range(data.num_tasks):
            idx = torch.nonzero(data.mask(split, t)).flatten()
            if len(idx) == 0:
                raise DataError(f"task {data.task_names[t]!r} has no {split} points; every task needs at least one")
            index_lists.append(idx)
        self.counts = torch.tensor([len(i) for i in index_lists])
        self.index = torch.nn.utils.rnn.pad_sequence(index_lists, batch_first=True, padding_value=-1)

    def sample(self):
        g = self.generator
        tasks = torch.randperm(self.data.num_tasks, generator=g)[: self.T]
        counts = self.counts[tasks]  # (T,)
        # without replacement: the N smallest random keys among each task's real points
        keys = torch.rand(self.T, self.index.shape[1], generator=g)
        keys[self.index[tasks] < 0] = float("inf")
        order = keys.argsort(dim=1)
        if self.N <= order.shape[1]:
            order = order[:, : self.N]
        else:
            order = order[:, :1].expand(-1, self.N)
        # with replacement, for tasks smaller than N
        with_repl = (torch.rand(self.T, self.N, generator=g) * counts[:, None]).long()
        pos = torch.where((counts >= self.N)[:, None], order, with_repl)
        idx = self.index[tasks].gather(1, pos)
        return self.data.x[idx], tasks


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

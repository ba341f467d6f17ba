"""Tasks as data: every point with its task label and split (``TaskDataset``),
and the preparation every source shares (static binarization, per-task split).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import Tensor


class DataError(ValueError):
    """Input data that cannot be used, with what is wrong and how to fix it."""


class TaskIndexError(IndexError, DataError):
    """A task index outside [0, number of tasks)."""


SPLITS = ("train", "val", "test", "all")


@dataclass
class TaskDataset:
    """Points ``x`` (n,) + x_shape, task index ``task`` (n,) in [0, T), and two
    masks (n,): ``is_train`` (the points models are fitted to) and ``is_val``
    (validation points, held out of training to choose settings; none unless
    ``with_validation`` carved them). The test split is every other point.
    """

    x: Tensor
    task: Tensor
    is_train: Tensor
    task_names: List[str]
    name: str
    info: Dict = field(default_factory=dict)
    is_val: Optional[Tensor] = None

    def __post_init__(self):
        if self.is_val is None:
            self.is_val = torch.zeros_like(self.is_train)
        if bool((self.is_train & self.is_val).any()):
            raise DataError("a point cannot be both a training and a validation point")
        n = len(self.x)
        if not (len(self.task) == len(self.is_train) == len(self.is_val) == n):
            raise DataError(f"{self.name}: x has {n} points but task, is_train and is_val have "
                            f"{len(self.task)}, {len(self.is_train)} and {len(self.is_val)}; give one entry per point")
        if n and (int(self.task.min()) < 0 or int(self.task.max()) >= len(self.task_names)):
            raise DataError(f"{self.name}: task indices run from {int(self.task.min())} to {int(self.task.max())}, "
                            f"but there are {len(self.task_names)} task names; each index must be in [0, {len(self.task_names)})")

    @classmethod
    def from_numpy(cls, x: np.ndarray, task: np.ndarray, is_train: np.ndarray, task_names, name: str, info: Dict) -> "TaskDataset":
        """Numpy arrays (n, *x_shape), (n,) task index, (n,) train mask -> ``TaskDataset``."""
        return cls(
            x=torch.from_numpy(x),
            task=torch.from_numpy(task.astype(np.int64)),
            is_train=torch.from_numpy(is_train),
            task_names=[str(n) for n in task_names],
            name=name,
            info=info,
        )

    @property
    def x_shape(self) -> tuple:
        return tuple(self.x.shape[1:])

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    @property
    def is_binary(self) -> bool:
        return bool(torch.all((self.x == 0) | (self.x == 1)))

    def fingerprint(self) -> str:
        """A SHA-256 of the points, their tasks and splits: the same data give the same
        fingerprint, in any folder, on any machine (a run records it)."""
        import hashlib

        h = hashlib.sha256()
        for t in (self.x.float(), self.task.long(), self.is_train, self.is_val):
            h.update(bytes(str(tuple(t.shape)), "utf-8"))
            h.update(t.contiguous().numpy().tobytes())
        return h.hexdigest()

    def task_index(self, task) -> int:
        """``task`` checked to be an index in [0, num_tasks); raises ``TaskIndexError``."""
        if isinstance(task, bool) or not isinstance(task, (int, np.integer)) or not 0 <= task < self.num_tasks:
            raise TaskIndexError(f"task must be an index in [0, {self.num_tasks}), got {task!r}; tasks are {self.task_names}")
        return int(task)

    def find_task(self, task) -> int:
        """A task given by name (as in ``task_names``) or by index (an int or a string of one): its index."""
        if isinstance(task, str) and task in self.task_names:
            return self.task_names.index(task)
        try:
            index = int(task)
        except (TypeError, ValueError):
            raise TaskIndexError(f"no task {task!r} in {self.name}; tasks are {self.task_names} (or their indices)") from None
        return self.task_index(index)

    def mask(self, split: str, t: Optional[int] = None) -> Tensor:
        """(n,) True on the points of a split ("train", "val", "test" or "all"),
        of task t only when given."""
        masks = {"train": self.is_train, "val": self.is_val, "test": ~(self.is_train | self.is_val),
                 "all": torch.ones_like(self.is_train)}
        if split not in masks:
            raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")
        return masks[split] if t is None else masks[split] & (self.task == t)

    def points(self, t: int, split: str = "train") -> Tensor:
        """All points of task t in a split ("train", "val", "test" or "all"): (n_t,) + x_shape."""
        return self.x[self.mask(split, t)]

    def subset(self, keep: Tensor) -> "TaskDataset":
        """The points where ``keep`` (n,) is True, every task and split kept as it is."""
        return TaskDataset(self.x[keep], self.task[keep], self.is_train[keep], self.task_names, self.name, dict(self.info), self.is_val[keep])

    def with_validation(self, fraction: float, seed: int) -> "TaskDataset":
        """A copy with ``fraction`` of each task's training points moved to a
        validation split (a seeded random choice; at least one point stays in
        training). ``fraction`` 0 returns the dataset as it is."""
        if not 0 <= fraction < 1:
            raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
        if fraction == 0:
            return self
        g = torch.Generator().manual_seed(seed)
        is_train, is_val = self.is_train.clone(), self.is_val.clone()
        for t in range(self.num_tasks):
            idx = torch.nonzero(self.mask("train", t)).flatten()
            n_val = min(int(round(fraction * len(idx))), len(idx) - 1)
            chosen = idx[torch.randperm(len(idx), generator=g)[:n_val]]
            is_train[chosen], is_val[chosen] = False, True
        info = dict(self.info) | {"val_fraction": fraction, "val_split": f"{fraction:.0%} of each task's training points (seed {seed})"}
        return TaskDataset(self.x, self.task, is_train, self.task_names, self.name, info, is_val)

    def without_task(self, task) -> "tuple[TaskDataset, TaskDataset]":
        """Split off one task (a name or an index): (every other task, re-indexed, with its
        splits as they were; the held-out task alone, all its points kept, as task 0).
        Discovery trains on the first and never sees the second."""
        t = self.find_task(task)
        if self.num_tasks < 2:
            raise DataError(f"{self.name} has one task; holding it out leaves nothing to train on")
        keep = self.task != t
        rest = self.subset(keep)
        rest.task = rest.task - (rest.task > t).long()
        rest.task_names = [n for i, n in enumerate(self.task_names) if i != t]
        rest.info = dict(self.info) | {"holdout": self.task_names[t]}
        held = self.subset(~keep)
        held.task = torch.zeros_like(held.task)
        held.task_names = [self.task_names[t]]
        return rest, held

    def sampler(self, tasks_per_batch: int, points_per_task: int, split: str = "train",
                generator: Optional[torch.Generator] = None):
        """Random task batches of this data for SVI (``data.batches.TaskSampler``): ``.sample()`` ->
        (x (T, N) + x_shape, task_idx (T,)); its ``generator`` is saved in checkpoints."""
        return TaskSampler(self, tasks_per_batch, points_per_task, split, generator)

    # -- whole-split statistics (the same methods on streamed data, ``data.shards``) ------------
    def iter_points(self, split: str = "all", chunk_points: int = 65536):
        """The points of a split in chunks of at most ``chunk_points``: (n_chunk,) + x_shape each."""
        yield from self.x[self.mask(split)].split(chunk_points)

    def moments(self, split: str = "train") -> "tuple[Tensor, Tensor]":
        """(mean, sd) of each value over the split's points, x_shape each; the sd divides by n."""
        x = self.x[self.mask(split)]
        return x.mean(0), x.std(0, unbiased=False)

    def sample_points(self, max_points: int, split: str = "train", seed: int = 0) -> Tensor:
        """At most ``max_points`` of the split's points: all of them when there are no more, else a
        seeded random choice."""
        x = self.x[self.mask(split)]
        if len(x) <= max_points:
            return x
        return x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:max_points]]

    def counts(self, split: str = "train") -> List[int]:
        """Points per task in a split, [n_0, ..., n_{T-1}]."""
        return torch.bincount(self.task[self.mask(split)], minlength=self.num_tasks).tolist()

    def summary(self) -> str:
        val = f", val={self.counts('val')}" if bool(self.is_val.any()) else ""
        return (
            f"{self.name}: {self.num_tasks} tasks, x_shape={self.x_shape}, "
            f"train points per task={self.counts('train')}{val}, test={self.counts('test')}"
        )


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
        # each task's points of the split, in ascending order, padded with -1: one stable sort, no loop over tasks
        idx = torch.nonzero(data.mask(split)).flatten()
        tasks = data.task[idx]
        order = torch.argsort(tasks, stable=True)
        idx, tasks = idx[order], tasks[order]
        self.counts = torch.bincount(tasks, minlength=data.num_tasks)
        empty = torch.nonzero(self.counts == 0).flatten()
        if len(empty):
            raise DataError(f"task {data.task_names[int(empty[0])]!r} has no {split} points; every task needs at least one")
        starts = torch.cumsum(self.counts, 0) - self.counts
        self.index = torch.full((data.num_tasks, int(self.counts.max())), -1, dtype=torch.long)
        self.index[tasks, torch.arange(len(idx)) - starts[tasks]] = idx

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


def check_run_data(run_dir, data: "TaskDataset") -> None:
    """Refuse data that are not the data a run was trained on (its ``data.json``
    fingerprint); runs written before fingerprints existed are not checked."""
    import json
    from pathlib import Path

    from ..checkpoint import DATA_FILE

    path = Path(run_dir) / DATA_FILE
    if not path.exists():
        return
    saved = json.loads(path.read_text())
    if saved.get("fingerprint") != data.fingerprint():
        raise DataError(
            f"the data at {saved.get('dataset')!r} are not the data the run in {run_dir} was trained on "
            f"(it saw {saved.get('points')} points in {saved.get('tasks')} tasks, shaped {saved.get('x_shape')}; "
            f"now {len(data.x)} points in {data.num_tasks} tasks, shaped {list(data.x_shape)}, or the same sizes with other "
            f"values): restore that file, or score other data on purpose with evaluate --dataset FILE")


# --------------------------------------------------------------------------
# Preparing points
# --------------------------------------------------------------------------
def binarize(x: np.ndarray, method: str, seed: int) -> np.ndarray:
    """Static binarization of intensities in [0, 1]: Bernoulli draws ("bernoulli",
    seeded) or a 0.5 threshold ("threshold"); "none" keeps x."""
    if method == "bernoulli":
        return (np.random.default_rng(seed).random(x.shape) < x).astype(np.float32)
    if method == "threshold":
        return (x > 0.5).astype(np.float32)
    if method == "none":
        return x.astype(np.float32)
    raise ValueError(f"binarize must be 'bernoulli', 'threshold' or 'none', got {method!r}")


def per_task_split(task: np.ndarray, test_fraction: float, seed: int) -> np.ndarray:
    """A boolean train mask holding out ``test_fraction`` of each task (at least one
    point stays in train)."""
    if not 0 <= test_fraction < 1:
        raise ValueError(f"test_fraction must be in [0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    is_train = np.ones(len(task), dtype=bool)
    for t in np.unique(task):
        idx = np.flatnonzero(task == t)
        n_test = min(int(round(test_fraction * len(idx))), len(idx) - 1)
        is_train[rng.permutation(idx)[:n_test]] = False
    return is_train

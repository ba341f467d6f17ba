"""Tasks as data: loading, checking, splitting, and drawing task batches.

A ``TaskDataset`` holds every point with its task label and split. Training draws
*task batches*: x of shape (T, N) + x_shape, T tasks with N points each, which is
what the model and guide take.

Sources:
* ``load_digits``: scikit-learn's 8x8 digits, one task per digit, statically
  binarized once with a fixed seed (the embedded default).
* ``load_npz``: a user's ``.npz`` with ``x`` (points, features) or
  (points, [channels,] height, width), integer ``task``, optional ``split``
  ("train"/"test"), checked with clear errors.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch
from torch import Tensor


class DataError(ValueError):
    """Input data that cannot be used, with what is wrong and how to fix it."""


@dataclass
class TaskDataset:
    """Points ``x`` (n,) + x_shape, task index ``task`` (n,) in [0, T), ``is_train`` (n,)."""

    x: Tensor
    task: Tensor
    is_train: Tensor
    task_names: List[str]
    name: str
    info: Dict = field(default_factory=dict)

    @property
    def x_shape(self) -> tuple:
        return tuple(self.x.shape[1:])

    @property
    def num_tasks(self) -> int:
        return len(self.task_names)

    @property
    def is_binary(self) -> bool:
        return bool(torch.all((self.x == 0) | (self.x == 1)))

    def points(self, t: int, split: str = "train") -> Tensor:
        """All points of task t in a split ("train", "test" or "all"): (n_t,) + x_shape."""
        mask = self.task == t
        if split == "train":
            mask = mask & self.is_train
        elif split == "test":
            mask = mask & ~self.is_train
        elif split != "all":
            raise ValueError(f"split must be 'train', 'test' or 'all', got {split!r}")
        return self.x[mask]

    def counts(self, split: str = "train") -> List[int]:
        return [len(self.points(t, split)) for t in range(self.num_tasks)]

    def summary(self) -> str:
        return (
            f"{self.name}: {self.num_tasks} tasks, x_shape={self.x_shape}, "
            f"train points per task={self.counts('train')}, test={self.counts('test')}"
        )


# --------------------------------------------------------------------------
# Task batches
# --------------------------------------------------------------------------
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
            mask = data.task == t
            if split == "train":
                mask &= data.is_train
            idx = torch.nonzero(mask).flatten()
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


# --------------------------------------------------------------------------
# Sources
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


def load_digits(binarization: str = "bernoulli", seed: int = 0, test_fraction: float = 0.2) -> TaskDataset:
    """scikit-learn digits: 1,797 images (1, 8, 8), one task per digit.

    Intensities 0-16 are scaled to [0, 1] then statically binarized once with
    ``seed``; each task keeps ``test_fraction`` of its points for test.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    d = sk_load_digits()
    x = binarize(d.images[:, None] / 16.0, binarization, seed)
    is_train = per_task_split(d.target, test_fraction, seed)
    return TaskDataset(
        x=torch.from_numpy(x),
        task=torch.from_numpy(d.target.astype(np.int64)),
        is_train=torch.from_numpy(is_train),
        task_names=[str(i) for i in range(10)],
        name="digits",
        info={"source": "sklearn.datasets.load_digits", "binarization": binarization, "seed": seed, "test_fraction": test_fraction},
    )


def load_npz(path: str | Path, binarization: str = "none", seed: int = 0, test_fraction: float = 0.2) -> TaskDataset:
    """A user's tasks from an ``.npz``: ``x``, integer ``task``, optional ``split``.

    ``x`` is (points, features), (points, height, width) or (points, channels,
    height, width). Without ``split``, ``test_fraction`` of each task is held out
    with ``seed``. Raises ``DataError`` naming the problem for a missing or
    corrupt file, missing arrays, mismatched lengths, non-finite values, bad
    labels or split values, and tasks with no training points.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such file: {path}. Pass an .npz with arrays 'x' and 'task' (see docs/data.md)")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise DataError(f"{path} is not a readable .npz file ({e}); re-create it with numpy.savez") from None
    missing = [k for k in ("x", "task") if k not in arrays]
    if missing:
        raise DataError(f"{path} lacks array(s) {missing}; it has {sorted(arrays)}. Save with np.savez(path, x=..., task=...)")
    x, task = arrays["x"], arrays["task"]
    if x.ndim < 2 or x.ndim > 4:
        raise DataError(f"'x' must be (points, features), (points, H, W) or (points, C, H, W); got shape {x.shape}")
    if len(x) == 0:
        raise DataError(f"{path} has no points ('x' is empty)")
    if task.ndim != 1 or len(task) != len(x):
        raise DataError(f"'task' must hold one label per point: x has {len(x)} points, task has shape {task.shape}")
    if not np.issubdtype(x.dtype, np.number):
        raise DataError(f"'x' must be numeric, got dtype {x.dtype}")
    bad = ~np.isfinite(x.reshape(len(x), -1)).all(1)
    if bad.any():
        raise DataError(f"'x' has NaN or infinite values in {int(bad.sum())} point(s), first at index {int(np.flatnonzero(bad)[0])}; drop or impute them")
    if not np.issubdtype(task.dtype, np.integer):
        raise DataError(f"'task' must hold integer labels, got dtype {task.dtype}")
    labels, task_idx = np.unique(task, return_inverse=True)
    if "split" in arrays:
        split = arrays["split"].astype(str)
        if split.shape != task.shape or not np.isin(split, ["train", "test"]).all():
            raise DataError("'split' must hold 'train' or 'test' for every point")
        is_train = split == "train"
    else:
        is_train = per_task_split(task_idx, test_fraction, seed)
    for t, label in enumerate(labels):
        if not is_train[task_idx == t].any():
            raise DataError(f"task {label} has no training points; give it at least one 'train' point or drop it")
    if x.ndim == 3:
        x = x[:, None]
    x = binarize(x.astype(np.float64), binarization, seed)
    return TaskDataset(
        x=torch.from_numpy(x),
        task=torch.from_numpy(task_idx.astype(np.int64)),
        is_train=torch.from_numpy(is_train),
        task_names=[str(label) for label in labels],
        name=path.stem,
        info={"source": str(path), "binarization": binarization, "seed": seed, "test_fraction": test_fraction if "split" not in arrays else None},
    )


def load_dataset(name: str, binarization: Optional[str] = None, seed: int = 0, test_fraction: float = 0.2) -> TaskDataset:
    """``"digits"`` or a path to an ``.npz``."""
    if name == "digits":
        return load_digits(binarization or "bernoulli", seed, test_fraction)
    if name in ("fashion-mnist", "mnist5k", "alloys"):  # real data: datasets.py
        from .datasets import load_named

        return load_named(name, binarization, seed, test_fraction)
    if name.endswith(".npz") or Path(name).exists():
        return load_npz(name, binarization or "none", seed, test_fraction)
    raise DataError(f"unknown dataset {name!r}: use 'digits', 'fashion-mnist', 'mnist5k', 'alloys' or a path to an .npz file")

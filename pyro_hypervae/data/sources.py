"""Where tasks come from: the embedded digits, a user's ``.npz``, and the
registry of named datasets (``load_dataset``).

* ``load_digits``: scikit-learn's 8x8 digits, one task per digit, statically
  binarized once with a fixed seed (the embedded default).
* ``load_npz``: a user's ``.npz`` with ``x`` (points, features) or
  (points, [channels,] height, width), integer ``task``, optional ``split``
  ("train"/"test"), checked with clear errors.
* ``read_points``: the points of an ``.npz`` to score under a trained model.
* the real datasets of the paper's tables register themselves in ``real.py``.

A registered dataset is a function ``(binarization, seed, test_fraction) ->
TaskDataset`` (``binarization`` None: the dataset's own default).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from torch import Tensor

from ..registry import DATASETS
from .shards import load_shards
from .tasks import DataError, TaskDataset, binarize, per_task_split


def load_digits(binarization: str = "bernoulli", seed: int = 0, test_fraction: float = 0.2) -> TaskDataset:
    """scikit-learn digits: 1,797 images (1, 8, 8), one task per digit.

    Intensities 0-16 are scaled to [0, 1] then statically binarized once with
    ``seed``; each task keeps ``test_fraction`` of its points for test.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    d = sk_load_digits()
    x = binarize(d.images[:, None] / 16.0, binarization, seed)
    is_train = per_task_split(d.target, test_fraction, seed)
    return TaskDataset.from_numpy(x, d.target, is_train, range(10), "digits",
                                  {"source": "sklearn.datasets.load_digits", "binarization": binarization, "seed": seed, "test_fraction": test_fraction})


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
    return TaskDataset.from_numpy(x, task_idx, is_train, labels, path.stem,
                                  {"source": str(path), "binarization": binarization, "seed": seed, "test_fraction": test_fraction if "split" not in arrays else None})


def read_points(path: str | Path, x_shape: tuple) -> Tensor:
    """Array ``x`` of an ``.npz`` as points shaped (n,) + x_shape (a missing channel dim is added)."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"no such file: {path}. Pass an .npz with an array 'x' of points")
    try:
        with np.load(path, allow_pickle=False) as f:
            if "x" not in f.files:
                raise DataError(f"{path} lacks an array 'x'; it has {sorted(f.files)}")
            x = f["x"]
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise DataError(f"{path} is not a readable .npz file ({e})") from None
    if x.ndim == len(x_shape) and len(x_shape) == 3:
        x = x[:, None]
    if tuple(x.shape[1:]) != tuple(x_shape):
        raise DataError(f"{path}: points have shape {tuple(x.shape[1:])}, the model expects {tuple(x_shape)}")
    if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
        raise DataError(f"{path}: 'x' must be finite numbers")
    return torch.from_numpy(x.astype(np.float32))


@DATASETS.register("digits")
def _digits(binarization: Optional[str], seed: int, test_fraction: float) -> TaskDataset:
    return load_digits(binarization or "bernoulli", seed, test_fraction)


def load_dataset(name: str, binarization: Optional[str] = None, seed: int = 0, test_fraction: float = 0.2, val_fraction: float = 0.0) -> TaskDataset:
    """A registered dataset by name (``DATASETS``: digits, fashion-mnist,
    mnist5k, alloys), a path to an ``.npz``, or a path to a shard directory
    (``index.json`` and its shards: a ``data.shards.ShardedTaskDataset``, streamed,
    with the splits it was written with); with ``val_fraction`` of each
    task's training points held out for validation (``TaskDataset.with_validation``)."""
    if name in DATASETS:
        return DATASETS[name](binarization, seed, test_fraction).with_validation(val_fraction, seed)
    if Path(name).is_dir():
        return load_shards(name, binarization, seed, test_fraction, val_fraction)
    if name.endswith(".npz") or Path(name).exists():
        return load_npz(name, binarization or "none", seed, test_fraction).with_validation(val_fraction, seed)
    raise DataError(f"unknown dataset {name!r}: use one of {DATASETS.names()}, a path to an .npz file or a shard directory (docs/data.md)")

"""Labelled points for HyperGAN: the classes of a ``TaskDataset`` become labels
(in an ``.npz``, ``task`` is the class label and ``split`` is honoured), and the
paper's 1-D toy regression (``cubic``).

Shapes: ``x`` (n,) + x_shape, ``y`` (n,) int64 class labels (float targets for
regression); one ``Split`` per train / val / test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch
from torch import Tensor

from ..data.sources import load_dataset
from ..data.tasks import DataError, TaskDataset
from .config import HyperGANConfig


@dataclass
class Split:
    x: Tensor
    y: Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class LabelledData:
    """Points with class labels (or regression targets), split three ways."""

    name: str
    x_shape: tuple
    classes: List[str]          # class names; [] for regression
    splits: Dict[str, Split] = field(default_factory=dict)
    info: Dict = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def is_regression(self) -> bool:
        return not self.classes

    def split(self, name: str) -> Split:
        if name not in self.splits:
            raise DataError(f"{self.name} has no {name!r} split; it has {sorted(self.splits)}")
        s = self.splits[name]
        if len(s) == 0:
            hint = " (set --val-fraction above 0)" if name == "val" else ""
            raise DataError(f"the {name} split of {self.name} is empty{hint}")
        return s

    def summary(self) -> str:
        sizes = ", ".join(f"{k} {len(v)}" for k, v in self.splits.items())
        kind = "regression" if self.is_regression else f"{self.num_classes} classes"
        return f"{self.name}: points of shape {self.x_shape}, {kind}; {sizes}"


def cubic(n: int = 20, seed: int = 0, noise: float = 3.0) -> LabelledData:
    """The paper's toy regression: x ~ U[-4, 4] (n points), y = x^3 + N(0, noise^2);
    test points on a grid over [-6, 6] (targets without noise)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, 1, generator=g) * 8 - 4
    y = x[:, 0] ** 3 + noise * torch.randn(n, generator=g)
    grid = torch.linspace(-6, 6, 200)[:, None]
    empty = Split(torch.zeros(0, 1), torch.zeros(0))
    return LabelledData("cubic", (1,), [], {"train": Split(x, y), "val": empty, "test": Split(grid, grid[:, 0] ** 3)},
                        {"source": "y = x^3 + N(0, 3^2), x ~ U[-4, 4]", "n": n, "seed": seed})


def load_labelled(config: HyperGANConfig) -> LabelledData:
    """The config's data: ``cubic``, or a registered dataset / ``.npz`` whose tasks are the classes
    (grey levels scaled to [0, 1], never binarized), without the class ``config.holdout``."""
    return load_labelled_and_holdout(config)[0]


def load_labelled_and_holdout(config: HyperGANConfig) -> "tuple[LabelledData, Optional[TaskDataset]]":
    """(the config's labelled data, the held-out class as a one-task ``TaskDataset`` with its
    train / test split, or None when ``config.holdout`` is empty)."""
    if config.dataset == "cubic":
        if config.holdout:
            raise DataError("the toy regression has no classes to hold out; leave holdout empty")
        return cubic(seed=config.seed), None
    tasks = load_dataset(config.dataset, binarization="none", seed=config.seed, test_fraction=config.test_fraction,
                         val_fraction=config.val_fraction)
    held = None
    if config.holdout:
        tasks, held = tasks.without_task(config.holdout)
    if tasks.num_tasks < 2:
        raise DataError(f"{config.dataset} has {tasks.num_tasks} class; a classifier needs at least two ('task' holds the class label)")
    splits = {}
    for name in ("train", "val", "test"):
        m = tasks.mask(name)
        splits[name] = Split(tasks.x[m].float(), tasks.task[m].long())
    return LabelledData(tasks.name, tuple(tasks.x_shape), list(tasks.task_names), splits, dict(tasks.info)), held

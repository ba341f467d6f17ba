"""What a search maximises: the paper's similarity to an ideal exemplar of the
held-out class. Higher is better.

Shapes: designs (B,) + x_shape -> scores (B,).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..data.tasks import TaskDataset


def exemplar_of(held: TaskDataset) -> Tensor:
    """The ideal exemplar of a held-out task: its medoid, the point closest (L2) to the mean of all its points."""
    x = held.x.float()
    if len(x) == 0:
        raise ValueError(f"the held-out task of {held.name} has no points to take an exemplar from")
    d = (x - x.mean(0)).reshape(len(x), -1).pow(2).sum(1)
    return x[int(d.argmin())]


class ExemplarSimilarity:
    """F(x) = -mean over features of (x - exemplar)^2: 0 for the exemplar itself, lower the further."""

    name = "exemplar_similarity"

    def __init__(self, exemplar: Tensor):
        self.exemplar = exemplar.float()

    def __call__(self, designs: Tensor) -> Tensor:
        if tuple(designs.shape[1:]) != tuple(self.exemplar.shape):
            raise ValueError(f"designs of shape {tuple(designs.shape[1:])} against an exemplar of shape {tuple(self.exemplar.shape)}")
        return -(designs.float() - self.exemplar).reshape(len(designs), -1).pow(2).mean(1)

"""What a search maximises, higher is better: the paper's similarity to an ideal
exemplar of the held-out class (``exemplar``), or, needing no exemplar, the log
probability of the held-out class under a classifier trained on every class
(``probability``; a multinomial logistic regression, another family than the
judge's, so the search never optimises the judge itself).

Shapes: designs (B,) + x_shape -> scores (B,).
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
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


class ClassProbability:
    """F(x) = log p(target class | x) under a logistic regression fitted to the training split of every task."""

    name = "class_log_probability"

    def __init__(self, full: TaskDataset, target: int):
        train = full.mask("train")
        self.x_shape, self.target = tuple(full.x_shape), int(target)
        self.classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        self.classifier.fit(full.x[train].reshape(int(train.sum()), -1).numpy(), full.task[train].numpy())
        self.column = int(np.flatnonzero(self.classifier.classes_ == self.target)[0])

    def __call__(self, designs: Tensor) -> Tensor:
        if tuple(designs.shape[1:]) != self.x_shape:
            raise ValueError(f"designs of shape {tuple(designs.shape[1:])}, the classifier takes {self.x_shape}")
        logp = self.classifier.predict_log_proba(designs.reshape(len(designs), -1).double().numpy())
        return torch.from_numpy(logp[:, self.column]).float()

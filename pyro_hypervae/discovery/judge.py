"""The judge: an independent classifier of tasks, trained on every class (the
held-out one included), never used by a search; a design is a *hit* when the
judge assigns it to the held-out class.

A scikit-learn MLP on the flattened points (standardised), trained on the
training split of all tasks, its accuracy measured on their test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from torch import Tensor

from ..data.tasks import TaskDataset


@dataclass
class Judge:
    classifier: Pipeline
    task_names: list
    test_accuracy: float

    def predict(self, x: Tensor) -> np.ndarray:
        """Task indices (of the full dataset) for points x (n,) + x_shape."""
        return self.classifier.predict(x.reshape(len(x), -1).numpy())

    def proba(self, x: Tensor) -> np.ndarray:
        """(n, tasks) class probabilities."""
        return self.classifier.predict_proba(x.reshape(len(x), -1).numpy())


def train_judge(full: TaskDataset, seed: int = 0, hidden: int = 128) -> Judge:
    """An MLP classifier of tasks on ``full``'s training split (all tasks), scored on its test split."""
    train, test = full.mask("train"), full.mask("test")
    clf = make_pipeline(StandardScaler(), MLPClassifier((hidden,), max_iter=400, early_stopping=True, random_state=seed))
    clf.fit(full.x[train].reshape(int(train.sum()), -1).numpy(), full.task[train].numpy())
    acc = float(clf.score(full.x[test].reshape(int(test.sum()), -1).numpy(), full.task[test].numpy())) if bool(test.any()) else float("nan")
    return Judge(clf, list(full.task_names), acc)

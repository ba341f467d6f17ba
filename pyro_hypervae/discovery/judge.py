"""The judge: an independent classifier of tasks, trained on every class (the
held-out one included), never used by a search; a design is a *hit* when the
judge assigns it to the held-out class.

scikit-learn's RBF support-vector classifier with its default settings on the
flattened, standardised points, trained on the training split of all tasks, its
accuracy measured on their test split (on the binarized digits: 0.886).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC
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



def train_judge(full: TaskDataset, seed: int = 0) -> Judge:
    """A classifier of tasks on ``full``'s training split (all tasks), scored on its test split."""
    train, test = full.mask("train"), full.mask("test")
    clf = make_pipeline(StandardScaler(), SVC(random_state=seed))
    clf.fit(full.x[train].reshape(int(train.sum()), -1).numpy(), full.task[train].numpy())
    acc = float(clf.score(full.x[test].reshape(int(test.sum()), -1).numpy(), full.task[test].numpy())) if bool(test.any()) else float("nan")
    return Judge(clf, list(full.task_names), acc)

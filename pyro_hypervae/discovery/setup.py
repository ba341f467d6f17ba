"""A discovery problem from a run trained with a task held out: the full data (for
the judge), the held-out task, its exemplar and the objective."""

from __future__ import annotations

from dataclasses import dataclass

from ..config import Config
from ..data.sources import load_dataset
from ..data.tasks import DataError, TaskDataset
from .judge import Judge, train_judge
from .objectives import ClassProbability, ExemplarSimilarity, exemplar_of

OBJECTIVES = ("exemplar", "probability")


@dataclass
class DiscoveryProblem:
    full: TaskDataset           # every task, the held-out one included (the judge's data)
    held: TaskDataset           # the held-out task alone
    target_index: int           # its index in ``full``
    objective: object           # designs (B,) + x_shape -> (B,), higher is better
    judge: Judge
    exemplar: object = None     # the held-out task's medoid (shown beside the designs)

    @property
    def target_name(self) -> str:
        return self.full.task_names[self.target_index]

    def verdict(self, design) -> dict:
        """The judge on one design (x_shape): ``hit`` (assigned to the held-out task), ``judged_as``
        (the task it was assigned to) and the judge's ``judge_test_accuracy``."""
        t = int(self.judge.predict(design[None])[0])
        return {"hit": t == self.target_index, "judged_as": self.full.task_names[t], "judge_test_accuracy": self.judge.test_accuracy}


def discovery_problem(config: Config, holdout=None, seed: int = 0, objective: str = "exemplar") -> DiscoveryProblem:
    """The problem of a run's config; ``holdout`` (name or index), when given, must be the run's own;
    ``objective``: ``exemplar`` (similarity to the held-out task's medoid, the paper's) or
    ``probability`` (log p(held-out task | x) under a logistic regression on every task)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
    d = config.data
    if d.holdout is None:
        raise DataError("this run was trained on every task; train with --holdout TASK to search for a task it never saw")
    full = load_dataset(d.dataset, d.binarization, config.seed, d.test_fraction, d.val_fraction)
    t = full.find_task(d.holdout)
    if holdout is not None and full.find_task(holdout) != t:
        raise DataError(f"the run holds out task {full.task_names[t]!r}, not {holdout!r}; search for the task the run never saw")
    _, held = full.without_task(t)
    exemplar = exemplar_of(held)
    f = ExemplarSimilarity(exemplar) if objective == "exemplar" else ClassProbability(full, t)
    return DiscoveryProblem(full, held, t, f, train_judge(full, seed), exemplar)

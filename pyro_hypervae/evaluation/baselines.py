"""Reference baselines beside every evaluation: the test NLL of trivial models on
the same points, so a model that fits worse than one of them is noticed.

* binary data: independent Bernoulli pixels, ``bernoulli_per_task`` (one set of
  pixel probabilities per task) and ``bernoulli_pooled`` (one for every task),
  each probability the posterior mean under a uniform prior, (k + 1) / (n + 2),
  so no pixel gets probability 0 or 1;
* continuous data: ``gaussian_per_task`` (one full-covariance Gaussian per task)
  and ``gaussian_pooled`` (one over every task), covariances by Ledoit-Wolf
  shrinkage (``sklearn.covariance.LedoitWolf``), so they exist with fewer points
  than dimensions.

Each is fitted on the training points and reported as the task's mean NLL over
the evaluated points, in nats per point, then the mean over tasks: the units
and averaging of ``evaluate``'s ``nll``.
"""

from __future__ import annotations

from typing import Dict, List

import numpy as np

from ..data.tasks import TaskDataset


def _bernoulli_nll(train: np.ndarray, x: np.ndarray) -> np.ndarray:
    p = (train.sum(0) + 1.0) / (len(train) + 2.0)
    return -(x * np.log(p) + (1 - x) * np.log1p(-p)).sum(1)


def _gaussian_nll(train: np.ndarray, x: np.ndarray) -> np.ndarray:
    from scipy.stats import multivariate_normal
    from sklearn.covariance import LedoitWolf

    if len(train) < 2:
        raise ValueError("a Gaussian baseline needs at least two training points per task")
    cov = LedoitWolf().fit(train)
    return -multivariate_normal(cov.location_, cov.covariance_, allow_singular=True).logpdf(x).reshape(len(x))


# training points the pooled baseline is fitted to (all of them up to this many; a random sample beyond)
POOLED_POINTS = 100_000


def reference_baselines(data: TaskDataset, split: str = "test", binary: bool | None = None) -> Dict[str, float]:
    """{baseline name: mean over tasks of the per-point NLL on ``split``}, nats per point."""
    binary = data.is_binary if binary is None else binary
    nll = _bernoulli_nll if binary else _gaussian_nll
    kind = "bernoulli" if binary else "gaussian"
    flat = lambda a: a.reshape(len(a), -1).double().numpy()  # noqa: E731
    pooled_train = flat(data.sample_points(POOLED_POINTS, "train"))
    per_task: List[float] = []
    pooled: List[float] = []
    for t in range(data.num_tasks):
        x = flat(data.points(t, split))
        if len(x) == 0:
            continue
        per_task.append(float(nll(flat(data.points(t, "train")), x).mean()))
        pooled.append(float(nll(pooled_train, x).mean()))
    if not per_task:
        raise ValueError(f"no {split} points to evaluate in {data.name}")
    return {f"{kind}_per_task": float(np.mean(per_task)), f"{kind}_pooled": float(np.mean(pooled))}


def beaten_by(nll: float, baselines: Dict[str, float]) -> List[str]:
    """Warnings, one per baseline with a lower NLL than the model's ``nll``."""
    return [f"the model's NLL {nll:.2f} nats/point is worse than the trivial baseline {name} ({value:.2f}) by "
            f"{nll - value:.2f}: a model that simple fits these points better (train longer; check the likelihood, "
            f"net.standardize and z_dim)" for name, value in baselines.items() if value < nll]

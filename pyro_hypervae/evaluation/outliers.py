"""Outlier detection (the paper's Table 3): scores of points, AUC, FPR/FNR.

A model is trained on the normal data only; every test point gets a score,
higher = more anomalous, in nats. Each model answers its own scores
(``model.outlier_scores``; their names and formulas are registered in
``SCORES``, ``models/scores.py``):

* HyperVAE ``neg_elbo``: the negative ELBO of x under theta decoded from the
  mean of q(u | x), the single test point being the task summary (the paper's).
* pooled VAE ``neg_elbo``: the negative ELBO of x.
* MetaVAE ``kl`` = KL(q(z | x) || p(z)) under the shared encoder, or
  ``neg_elbo`` = the mean over its per-task decoders of the negative ELBO
  (the paper's "MetaVAE (KL)" and "MetaVAE (-EL)").
* per-task VAEs ``neg_elbo`` (not in the paper): the smallest negative ELBO over
  the tasks' VAEs (a point is normal if some task explains it).

The negative ELBO's expectation is estimated with ``num_samples`` draws of z
(the KL is closed form), by ``nets.estimator.estimate``.

``detection_metrics`` gives AUC (``sklearn.metrics.roc_auc_score``, outliers the
positive class) and FPR / FNR at a threshold: by default the 95th percentile of
the scores of the normal *training* points (so FPR is about 5% when test and
train scores agree). A point is flagged an outlier when its score is above the
threshold.
"""

from __future__ import annotations

from typing import Dict

import numpy as np
import torch
from torch import Tensor


@torch.no_grad()
def outlier_scores(model, x: Tensor, num_samples: int = 8, chunk: int = 100) -> Dict[str, Tensor]:
    """Scores of points x (n,) + x_shape under a trained model, higher = more
    anomalous: {score name: (n,)}, each point scored alone
    (``model.outlier_scores``; the names are the model's ``scores``, registered
    in ``SCORES``), ``chunk`` points at a time."""
    model.eval()
    out: Dict[str, list] = {}
    for s in range(0, len(x), chunk):
        for k, v in model.outlier_scores(x[s : s + chunk], num_samples).items():
            out.setdefault(k, []).append(v)
    return {k: torch.cat(v) for k, v in out.items()}


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------
def detection_metrics(scores: np.ndarray, is_outlier: np.ndarray, threshold: float) -> Dict[str, float]:
    """AUC, FPR and FNR in percent; a point is flagged when score > threshold.

    FPR = normal points flagged / normal points; FNR = outliers not flagged / outliers.
    """
    from sklearn.metrics import roc_auc_score

    scores, y = np.asarray(scores, dtype=np.float64), np.asarray(is_outlier, dtype=bool)
    if y.all() or not y.any():
        raise ValueError("need both normal points and outliers to score a detector")
    flagged = scores > threshold
    return {
        "auc": 100.0 * float(roc_auc_score(y, scores)),
        "fpr": 100.0 * float(flagged[~y].mean()),
        "fnr": 100.0 * float((~flagged[y]).mean()),
        "threshold": float(threshold),
    }


def train_threshold(train_scores: np.ndarray, percentile: float = 95.0) -> float:
    """The stated threshold: the ``percentile``-th percentile of normal training scores."""
    return float(np.percentile(np.asarray(train_scores, dtype=np.float64), percentile))

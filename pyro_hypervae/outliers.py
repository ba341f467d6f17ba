"""Outlier detection (the paper's Table 3): scores, AUC, FPR/FNR, and ``pyro-hypervae score``.

A model is trained on the normal data only; every test point gets a score,
higher = more anomalous, in nats:

* HyperVAE: the negative ELBO of x under theta decoded from the mean of
  q(u | x), the single test point being the task summary (the paper's score).
* pooled VAE (``vae``): the negative ELBO of x.
* MetaVAE: ``kl`` = KL(q(z | x) || p(z)) under the shared encoder, or
  ``neg_elbo`` = the mean over its per-task decoders of the negative ELBO
  (the paper's "MetaVAE (KL)" and "MetaVAE (-EL)").
* per-task VAEs (not in the paper): the smallest negative ELBO over the tasks'
  VAEs (a point is normal if some task explains it).

The negative ELBO is E_q(z|x)[-log p(x|z)] + KL(q(z|x) || p(z)), the
expectation estimated with ``num_samples`` draws of z (the KL is closed form).

``detection_metrics`` gives AUC (``sklearn.metrics.roc_auc_score``, outliers the
positive class) and FPR / FNR at a threshold: by default the 95th percentile of
the scores of the normal *training* points (so FPR is about 5% when test and
train scores agree). A point is flagged an outlier when its score is above the
threshold.
"""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
from pyro import distributions as dist
from torch import Tensor
from torch.distributions import kl_divergence

from .baselines import MetaVAE, PerTaskVAE
from .data import DataError
from .model import HyperVAE, PooledVAE, TargetHierarchy
from .target import Params, TargetVAE

SCORES = {
    "hypervae": ("neg_elbo",),
    "vae": ("neg_elbo",),
    "metavae": ("neg_elbo", "kl"),
    "pertask": ("neg_elbo",),
}


# --------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------
@torch.no_grad()
def batched_neg_elbo(target: TargetVAE, x: Tensor, enc: Params, dec: Params, num_samples: int = 8) -> Dict[str, Tensor]:
    """Negative ELBO and KL(z) of points x (N,) + x_shape under M models.

    ``enc``: encoder parameters with lead (1,) or (M,); ``dec``: decoder
    parameters with lead (1,) or (M,). Returns ``neg_elbo`` and ``kl_z``, each
    (M', N) with M' the models' batch size. The z samples are folded into the
    points dim, so parameters are never copied per sample.
    """
    xs = x.unsqueeze(0)  # (1, N) + x_shape
    M_enc = next(iter(enc.values())).shape[0]
    if M_enc > 1:
        xs = xs.expand((M_enc,) + xs.shape[1:])
    loc, scale = target.encode(xs, enc)  # (Me, N, Z)
    q = dist.Normal(loc, scale)
    kl = kl_divergence(q, dist.Normal(torch.zeros_like(loc), torch.ones_like(scale))).sum(-1)  # (Me, N)
    K, N = num_samples, x.shape[0]
    z = q.sample((K,)).transpose(0, 1).reshape(loc.shape[0], K * N, -1)  # (Me, K N, Z)
    M_dec = next(iter(dec.values())).shape[0]
    if z.shape[0] == 1 and M_dec > 1:
        z = z.expand(M_dec, -1, -1)
    out = target.decode(z, dec)  # (M, K N) + out_shape
    M = out.shape[0]
    out = out.reshape((M, K, N) + out.shape[2:])
    log_px = target.x_dist(out).log_prob(x.unsqueeze(0).unsqueeze(0))  # (M, K, N)
    return {"neg_elbo": kl - log_px.mean(1), "kl_z": kl.expand(M, N)}


def _split(params: Params, names) -> Params:
    return {n: params[n] for n in names}


@torch.no_grad()
def outlier_scores(model: TargetHierarchy, x: Tensor, num_samples: int = 8, chunk: int = 100) -> Dict[str, Tensor]:
    """Scores of points x (n,) + x_shape, higher = more anomalous: {score name: (n,)}.
    See the module docstring for each model's scores."""
    model.eval()
    t = model.target
    out: Dict[str, list] = {}
    for s in range(0, len(x), chunk):
        xc = x[s : s + chunk]
        if isinstance(model, HyperVAE):
            # each point is its own task: theta_i from the mean of q(u | x_i)
            theta = model.task_theta(xc.unsqueeze(1))  # {name: (n_c, *shape)}
            xs = xc.unsqueeze(1)  # (n_c, 1) + x_shape: model i sees only point i
            loc, scale = t.encode(xs, _split(theta, t.encoder_names))
            q = dist.Normal(loc, scale)
            kl = kl_divergence(q, dist.Normal(torch.zeros_like(loc), torch.ones_like(scale))).sum(-1)  # (n_c, 1)
            z = q.sample((num_samples,)).transpose(0, 1).reshape(len(xc), num_samples, -1)  # (n_c, K, Z)
            o = t.decode(z, _split(theta, t.decoder_names))  # (n_c, K) + out_shape
            log_px = t.x_dist(o).log_prob(xs)  # (n_c, K)
            scores = {"neg_elbo": (kl - log_px.mean(1, keepdim=True))[:, 0]}
        elif isinstance(model, MetaVAE):
            enc = {n: p.detach() for n, p in model.encoder.items()}
            r = batched_neg_elbo(t, xc, enc, model.all_decoders(), num_samples)
            scores = {"neg_elbo": r["neg_elbo"].mean(0), "kl": r["kl_z"][0]}
        elif isinstance(model, PerTaskVAE):
            theta = {n: p.detach() for n, p in model.theta.items()}
            r = batched_neg_elbo(t, xc, _split(theta, t.encoder_names), _split(theta, t.decoder_names), num_samples)
            scores = {"neg_elbo": r["neg_elbo"].min(0).values}
        elif isinstance(model, PooledVAE):
            theta = {n: p.detach() for n, p in model.theta.items()}
            r = batched_neg_elbo(t, xc, _split(theta, t.encoder_names), _split(theta, t.decoder_names), num_samples)
            scores = {"neg_elbo": r["neg_elbo"][0]}
        else:
            raise ValueError(f"no outlier score for model kind {model.kind!r}")
        for k, v in scores.items():
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


# --------------------------------------------------------------------------
# CLI: pyro-hypervae score
# --------------------------------------------------------------------------
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


def cmd_score(args) -> int:
    from .train import load_run

    config, _, model = load_run(args.run)
    x = read_points(args.data, model.target.x_shape)
    try:
        model.target.likelihood.check(x)
    except ValueError as e:
        raise DataError(f"{args.data}: {e} (the run was trained with binarization={config.binarization!r})") from None
    names = SCORES.get(model.kind, ("neg_elbo",))
    which = args.score or names[0]
    if which not in names:
        raise ValueError(f"score {which!r} is not defined for {model.kind}; choose one of {list(names)}")
    torch.manual_seed(args.seed)
    scores = outlier_scores(model, x, num_samples=args.samples)[which]
    result = {
        "run": str(args.run),
        "data": str(args.data),
        "model": model.kind,
        "score": which,
        "higher_is_more_anomalous": True,
        "num_samples": args.samples,
        "scores": scores.tolist(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result))
    print(f"wrote {len(scores)} {which} scores of {model.kind} to {out}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("score", help="outlier scores (higher = more anomalous) of the points in an .npz under a trained run")
    p.add_argument("--run", required=True, help="run directory (from train)")
    p.add_argument("--data", required=True, help=".npz with an array 'x' of points shaped like the run's data")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--score", default=None, help="for metavae: neg_elbo (default) or kl")
    p.add_argument("--samples", type=int, default=8, help="z samples for the negative ELBO")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_score)

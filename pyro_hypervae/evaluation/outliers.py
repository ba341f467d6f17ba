"""Outlier detection: scores of points, AUC, FPR/FNR, and the scores that
survive the likelihood paradox.

A model is trained on the normal data only; every test point gets a score,
higher = more anomalous. Each model answers its own *base* scores
(``model.outlier_scores``; their names and formulas are registered in
``SCORES``, ``models/scores.py``):

* HyperVAE ``neg_elbo``: the negative ELBO of x under theta decoded from the
  mean of q(u | x), the single test point being the task summary (the paper's);
  ``kl_u`` = KL(q(u | x) || p(u)), the nats it takes to describe the *model*
  that explains x; ``bits_back`` = ``neg_elbo`` + ``kl_u``, the whole two-part
  code length of x as a one-point task.
* pooled VAE ``neg_elbo``: the negative ELBO of x.
* MetaVAE ``kl`` = KL(q(z | x) || p(z)) under the shared encoder, or
  ``neg_elbo`` = the mean over its per-task decoders of the negative ELBO
  (the paper's "MetaVAE (KL)" and "MetaVAE (-EL)").
* per-task VAEs ``neg_elbo`` (not in the paper): the smallest negative ELBO over
  the tasks' VAEs (a point is normal if some task explains it).

On top of them, for every model (``derived_scores``):

* ``complexity`` (Serrà et al., ICLR 2020), images only: ``neg_elbo`` in bits
  minus L(x), the length in bits of x under a generic lossless compressor
  (``compressed_bits``): bz2 for ``complexity``, PNG for ``complexity_png``.
  A simple image (few active pixels) is cheap for any model *and* for PNG; the
  difference keeps what the model knows beyond generic simplicity.
* ``typicality`` (Nalisnick et al. 2019, a batch of one point): the distance of
  ``neg_elbo`` from its mean over normal training points,
  |neg_elbo(x) - mean|: too likely is as suspicious as too unlikely.
  ``typical_set_test`` is the test itself on batches of M points.
* ``A+B`` combinations: the sum of the scores' z-values, each standardised
  by its mean and standard deviation over normal training points.

``typicality`` and the combinations need a ``ScoreReference``: the scores of
normal training points (``score_reference``). The negative ELBO's
expectation is estimated with ``num_samples`` draws of z (the KL is closed
form), by ``nets.estimator.estimate``.

``detection_metrics`` gives AUC (``sklearn.metrics.roc_auc_score``, outliers the
positive class) and FPR / FNR at a threshold: by default the 95th percentile of
the scores of the normal *training* points (so FPR is about 5% when test and
train scores agree). A point is flagged an outlier when its score is above the
threshold. ``fpr95`` is the FPR at 95% TPR (``fpr_at_95_tpr``).

Devices: scores are computed where the model is (``device=`` moves it first;
``inference.device``), the points are moved there a chunk at a time, and every
score comes back to the CPU, where the compressors, references and metrics work.
"""

from __future__ import annotations

import bz2
import io
import math
from dataclasses import dataclass, field
from typing import Tuple, Dict, List, Optional, Sequence

import numpy as np
import torch
from torch import Tensor

from ..inference.device import place
from ..registry import SCORES

# the score ``pyro-hypervae score`` uses when none is named (``default_score``), per kind
# of data and model: the best mean validation AUC in the "validation_ranking" of
# docs/results/outliers/outliers.json (a test checks they agree), never the test
# outliers. "images": images under a discrete likelihood (the complexity scores
# exist); "other": the rest. A model not listed gets FALLBACK_SCORE.
DEFAULT_SCORES = {
    "images": {"hypervae": "complexity_png", "vae": "complexity_png", "metavae": "typicality"},
    "other": {"hypervae": "typicality+kl_u", "vae": "neg_elbo", "metavae": "kl"},
}
FALLBACK_SCORE = "neg_elbo"
# scores every model gets on top of its own (``derived_scores``)
DERIVED = ("complexity", "complexity_png", "typicality")


# --------------------------------------------------------------------------
# The generic lossless compressor of the complexity correction
# --------------------------------------------------------------------------
def is_image(x_shape: Sequence[int]) -> bool:
    """Points shaped (C, H, W) with one or three channels: what PNG encodes."""
    return len(x_shape) == 3 and x_shape[0] in (1, 3)


def _png_bytes(img: np.ndarray, binary: bool) -> bytes:
    from PIL import Image

    if binary and img.shape[0] == 1:
        pil = Image.fromarray(img[0] > 0.5).convert("1")  # one bit per pixel
    else:
        a = np.uint8(np.round(255 * img))
        pil = Image.fromarray(a[0], "L") if img.shape[0] == 1 else Image.fromarray(a.transpose(1, 2, 0), "RGB")
    buf = io.BytesIO()
    pil.save(buf, format="PNG", optimize=True, compress_level=9)
    return buf.getvalue()


def _bz2_bytes(img: np.ndarray, binary: bool) -> bytes:
    raw = np.packbits(img.reshape(-1) > 0.5) if binary else np.uint8(np.round(255 * img)).reshape(-1)
    return bz2.compress(raw.tobytes(), 9)


# generic lossless compressors: (image (C, H, W) in [0, 1], binary?) -> bytes
COMPRESSORS = {"bz2": _bz2_bytes, "png": _png_bytes}


def compressed_bits(x: Tensor, compressor: str = "bz2") -> Tensor:
    """L(x): the length in bits of each image under a generic lossless compressor.

    x: (n, C, H, W) with values in [0, 1] (C = 1 or 3) -> (n,). ``bz2`` (Python's
    bz2, level 9) compresses the pixels as bytes, binary images packed eight
    pixels a byte; ``png`` writes a PNG with Pillow (level 9), binary images one
    bit per pixel, others as 8-bit levels.
    """
    if compressor not in COMPRESSORS:
        raise ValueError(f"unknown compressor {compressor!r}; choose one of {sorted(COMPRESSORS)}")
    if x.dim() != 4 or not is_image(x.shape[1:]):
        raise ValueError(f"the complexity correction compresses images (n, C, H, W), C 1 or 3; got points shaped {tuple(x.shape[1:])}")
    arr = x.detach().cpu().numpy()
    if arr.min() < 0 or arr.max() > 1:
        raise ValueError("compressed_bits takes pixel values in [0, 1]")
    binary = bool(np.isin(arr, (0.0, 1.0)).all())
    compress = COMPRESSORS[compressor]
    return torch.tensor([8 * len(compress(img, binary)) for img in arr], dtype=torch.float32, device="cpu")


# --------------------------------------------------------------------------
# Scores
# --------------------------------------------------------------------------
@dataclass
class ScoreReference:
    """Scores of normal training points, {score name: (n,) array}: what
    ``typicality`` and the combinations are measured against."""

    scores: Dict[str, np.ndarray] = field(default_factory=dict)

    def mean(self, name: str) -> float:
        return float(np.mean(self.scores[name]))

    def std(self, name: str) -> float:
        return float(np.std(self.scores[name])) or 1.0


def typicality(neg_elbo, typical: float):
    """Nalisnick et al.'s typicality of single points: |neg_elbo - H|, H the mean negative
    ELBO of normal training points (an estimate of the entropy the typical set sits at).
    neg_elbo: (n,) tensor or array -> the same."""
    return abs(neg_elbo - typical)


def available_scores(model) -> List[str]:
    """The scores ``outlier_scores`` can give for ``model``: its own, then the derived ones
    (``complexity`` only for images under a discrete likelihood)."""
    names = list(model.scores)
    if "neg_elbo" in names:
        if is_image(model.target.x_shape) and model.target.likelihood.discrete:
            names += ["complexity", "complexity_png"]
        names.append("typicality")
    return names


def data_kind(model) -> str:
    """The kind of data the default score is chosen for: "images" (images under a discrete
    likelihood: the complexity scores exist) or "other"."""
    return "images" if "complexity" in available_scores(model) else "other"


def default_score(model) -> str:
    """The score ``score`` uses when none is named: ``DEFAULT_SCORES`` for the model's name
    and kind of data, else ``FALLBACK_SCORE`` (else the model's first score)."""
    have = available_scores(model)
    for name in (DEFAULT_SCORES[data_kind(model)].get(model.name), FALLBACK_SCORE):
        if name and all(part in have for part in name.split("+")):
            return name
    return have[0]


def _base_scores(model, x: Tensor, num_samples: int, chunk: int) -> Dict[str, Tensor]:
    """The model's own scores of x, ``chunk`` points at a time on the model's device, on the CPU."""
    model.eval()
    out: Dict[str, list] = {}
    for s in range(0, len(x), chunk):
        for k, v in model.outlier_scores(x[s : s + chunk], num_samples).items():
            out.setdefault(k, []).append(v.cpu())
    return {k: torch.cat(v) for k, v in out.items()}


def derived_scores(scores: Dict[str, Tensor], x: Tensor, model, reference: Optional[ScoreReference]) -> Dict[str, Tensor]:
    """``complexity`` and ``complexity_png`` (images under a discrete likelihood) and, with a reference,
    ``typicality``, from the base scores {name: (n,)} of points x."""
    out: Dict[str, Tensor] = {}
    if "neg_elbo" not in scores:
        return out
    if "complexity" in available_scores(model):
        bits = scores["neg_elbo"] / math.log(2)
        out["complexity"] = bits - compressed_bits(x, "bz2")
        out["complexity_png"] = bits - compressed_bits(x, "png")
    if reference is not None:
        out["typicality"] = typicality(scores["neg_elbo"], reference.mean("neg_elbo"))
    return out


def combine(scores: Dict[str, Tensor], names: Sequence[str], reference: ScoreReference) -> Tensor:
    """The sum over ``names`` of (score - mean) / std, mean and std over the reference: (n,)."""
    missing = [n for n in names if n not in scores or n not in reference.scores]
    if missing:
        raise ValueError(f"cannot combine {list(names)}: no {missing} scores (have {sorted(scores)})")
    return sum((scores[n] - reference.mean(n)) / reference.std(n) for n in names)


@torch.no_grad()
def outlier_scores(model, x: Tensor, num_samples: int = 8, chunk: int = 100,
                   reference: Optional[ScoreReference] = None, combinations: Sequence[str] = (),
                   device=None) -> Dict[str, Tensor]:
    """Scores of points x (n,) + x_shape under a trained model, higher = more
    anomalous: {score name: (n,)}, each point scored alone, ``chunk`` points at a
    time: the model's own (``model.outlier_scores``), the derived ones
    (``derived_scores``; ``typicality`` needs ``reference``) and the
    ``combinations`` asked for ("A+B": z-values summed; need ``reference``).
    ``device``: where to compute (the model is moved there first); None: where it is.
    The scores are on the CPU."""
    place(model, device)
    scores = _base_scores(model, x, num_samples, chunk)
    scores |= derived_scores(scores, x, model, reference)
    for c in combinations:
        if reference is None:
            raise ValueError(f"the combination {c!r} needs a reference of normal training scores (score_reference)")
        scores[c] = combine(scores, c.split("+"), reference)
    return scores


@torch.no_grad()
def score_reference(model, x_train: Tensor, num_samples: int = 8, chunk: int = 100, device=None) -> ScoreReference:
    """The scores of normal training points x_train (n,) + x_shape, typicality included
    (its mean taken over these same points); ``device`` as for ``outlier_scores``."""
    s = outlier_scores(model, x_train, num_samples, chunk, device=device)
    ref = ScoreReference({k: v.double().numpy() for k, v in s.items()})
    if "neg_elbo" in ref.scores:
        ref.scores["typicality"] = typicality(ref.scores["neg_elbo"], ref.mean("neg_elbo"))
    return ref


# the scores of points scored under their own task's model (``labelled_scores``)
LABELLED_SCORES = ("neg_elbo", "complexity", "complexity_png", "typicality")


@torch.no_grad()
def labelled_scores(model, data, x: Tensor, tasks: Tensor, num_samples: int = 8,
                    reference_points: int = 1000, device=None) -> Tuple[Dict[str, Tensor], Dict[str, np.ndarray]]:
    """Points x (n,) + x_shape, each scored under the model of its own task ``tasks`` (n,)
    (indices of ``data``'s tasks): theta_t decoded from task t's training points, as
    ``evaluate`` does; "is x an outlier *of task t*?". Scores: ``neg_elbo``, the complexity
    scores for images under a discrete likelihood, and ``typicality`` against task t's own
    training points (at most ``reference_points`` of each task).

    Returns (scores {name: (n,)}, reference {name: the same scores of the tasks' training points}),
    on the CPU; ``device`` as for ``outlier_scores``."""
    from .metrics import point_metrics

    place(model, device)
    model.eval()
    images = "complexity" in available_scores(model)
    scores = {n: torch.zeros(len(x), device="cpu") for n in LABELLED_SCORES if images or not n.startswith("complexity")}
    reference: Dict[str, list] = {n: [] for n in scores}
    for t in tasks.unique().tolist():
        rows = tasks == t
        train = data.points(t, "train")
        theta = model.task_theta(train.unsqueeze(0), torch.tensor([t], device="cpu"))
        ref_x = train[:reference_points]
        mine = point_metrics(model, x[rows], theta, num_samples)["neg_elbo"]
        ref = point_metrics(model, ref_x, theta, num_samples)["neg_elbo"]
        for part, (v, pts) in {"x": (mine, x[rows]), "ref": (ref, ref_x)}.items():
            out = {"neg_elbo": v, "typicality": typicality(v, ref.mean())}
            if images:
                bits = v / math.log(2)
                out["complexity"] = bits - compressed_bits(pts, "bz2")
                out["complexity_png"] = bits - compressed_bits(pts, "png")
            for n, val in out.items():
                if part == "x":
                    scores[n][rows] = val.float()
                else:
                    reference[n].append(val.double().numpy())
    return scores, {n: np.concatenate(v) for n, v in reference.items()}


def check_score_name(model, name: str) -> None:
    """Refuse a score (or an "A+B" combination) that ``model`` cannot give, listing those it can."""
    have = available_scores(model)
    parts = name.split("+")
    bad = [p for p in parts if p not in have]
    if bad:
        raise ValueError(f"score {name!r}: {bad} not defined for the {model.label} on points shaped "
                         f"{tuple(model.target.x_shape)}; choose from {have} or a combination such as 'typicality+kl_u'")


# --------------------------------------------------------------------------
# The paradox, said out loud
# --------------------------------------------------------------------------
def paradox_warning(neg_elbo: np.ndarray, reference: ScoreReference, fraction: float = 0.75) -> Optional[str]:
    """A warning when the given points look like the likelihood paradox: at least
    ``fraction`` of them are *more* likely (lower negative ELBO) than the median
    normal training point. None otherwise, or for fewer than 5 points."""
    neg_elbo = np.asarray(neg_elbo, dtype=np.float64)
    if len(neg_elbo) < 5 or "neg_elbo" not in reference.scores:
        return None
    median = float(np.median(reference.scores["neg_elbo"]))
    share = float(np.mean(neg_elbo < median))
    if share < fraction:
        return None
    return (f"{100 * share:.0f}% of these points are more likely under the model than the median training point "
            f"(negative ELBO below {median:.1f} nats): if they are outliers, the likelihood cannot flag them "
            f"(the likelihood paradox, Nalisnick et al. 2019). For images use --score complexity; see docs/outliers.md")


def typical_set_test(neg_elbo: np.ndarray, reference: ScoreReference, batch_size: int, alpha: float = 0.01,
                     bootstrap: int = 1000, seed: int = 0) -> dict:
    """Nalisnick et al.'s typicality test on one batch of M points: the batch is out of
    distribution when |mean neg_elbo of the batch - mean over training| exceeds the
    (1 - alpha) quantile of the same statistic over ``bootstrap`` batches of M
    training points drawn with replacement.

    Returns {"statistic", "threshold", "out_of_distribution"}."""
    neg_elbo = np.asarray(neg_elbo, dtype=np.float64)
    ref = reference.scores["neg_elbo"]
    if len(neg_elbo) != batch_size:
        raise ValueError(f"the batch holds {len(neg_elbo)} points, batch_size is {batch_size}")
    rng = np.random.default_rng(seed)
    h = ref.mean()
    boot = np.abs(ref[rng.integers(0, len(ref), (bootstrap, batch_size))].mean(1) - h)
    threshold = float(np.quantile(boot, 1 - alpha))
    stat = float(abs(neg_elbo.mean() - h))
    return {"statistic": stat, "threshold": threshold, "out_of_distribution": stat > threshold}


# --------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------
def detection_metrics(scores: np.ndarray, is_outlier: np.ndarray, threshold: float) -> Dict[str, float]:
    """AUC, FPR and FNR in percent; a point is flagged when score > threshold; and
    ``fpr95``, the FPR at 95% TPR (``fpr_at_95_tpr``), in percent.

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
        "fpr95": 100.0 * fpr_at_95_tpr(scores[~y], scores[y]),
    }


def fpr_at_95_tpr(scores_in: np.ndarray, scores_out: np.ndarray) -> float:
    """Fraction of in-distribution points flagged when the threshold catches 95% of the outliers."""
    threshold = np.quantile(scores_out, 0.05)
    return float((np.asarray(scores_in) >= threshold).mean())


def train_threshold(train_scores: np.ndarray, percentile: float = 95.0) -> float:
    """The stated threshold: the ``percentile``-th percentile of normal training scores."""
    return float(np.percentile(np.asarray(train_scores, dtype=np.float64), percentile))

"""``pyro-hypervae score``: outlier scores of any points under a trained run."""

from __future__ import annotations

import argparse
import sys

import torch

from ..checkpoint import write_json_atomic
from ..data.sources import read_points
from ..data.tasks import DataError
from ..evaluation.outliers import DEFAULT_SCORES, check_score_name, default_score, outlier_scores, paradox_warning, score_reference
from ..models.build import load_run
from ..registry import SCORES


def cmd_score(args) -> int:
    config, data, model = load_run(args.run)
    x = read_points(args.data, model.target.x_shape)
    try:
        model.target.likelihood.check(x)
    except ValueError as e:
        raise DataError(f"{args.data}: {e} (the run was trained with binarization={config.data.binarization!r})") from None
    which = args.score or default_score(model)
    check_score_name(model, which)
    if args.reference_points < 1:
        raise ValueError(f"--reference-points must be at least 1, got {args.reference_points}")
    torch.manual_seed(args.seed)
    train = data.x[data.is_train]
    train = train[torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))[: args.reference_points]]
    reference = score_reference(model, train, args.samples)
    combos = [which] if "+" in which else []
    scores = outlier_scores(model, x, num_samples=args.samples, reference=reference, combinations=combos)
    warning = paradox_warning(scores["neg_elbo"].numpy(), reference) if "neg_elbo" in scores else None
    result = {
        "run": str(args.run),
        "data": str(args.data),
        "model": model.name,
        "score": which,
        "default_score": default_score(model),
        "higher_is_more_anomalous": True,
        "units": "bits" if which == "complexity" else ("z-values summed" if "+" in which else "nats"),
        "num_samples": args.samples,
        "reference": f"{len(train)} random training points of the run's data (seed {args.seed})",
        "threshold_95": float(torch.tensor(reference.scores[which]).quantile(0.95)) if which in reference.scores else None,
        "warnings": [warning] if warning else [],
        "scores": scores[which].tolist(),
    }
    out = write_json_atomic(result, args.out)
    if warning:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {len(x)} {which} scores of {model.name} to {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="outlier scores (higher = more anomalous) of the points in an .npz under a trained run")
    p.add_argument("--run", required=True, help="run directory (from train)")
    p.add_argument("--data", required=True, help=".npz with an array 'x' of points shaped like the run's data")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--score", default=None, metavar="NAME",
                   help="; ".join(f"{s.name}: {s.formula}" for _, s in SCORES.items())
                   + "; or A+B, the z-values of two scores summed. "
                   f"Default: the first of {', '.join(DEFAULT_SCORES)} the model has (complexity_png for images under a "
                   "Bernoulli likelihood; typicality+kl_u for a HyperVAE on continuous data; neg_elbo otherwise): the best "
                   "on validation for each kind of data in docs/results/outliers; the paper's score: --score neg_elbo")
    p.add_argument("--samples", type=int, default=8, help="z samples for the negative ELBO")
    p.add_argument("--reference-points", type=int, default=1000,
                   help="normal training points whose scores typicality and combinations are measured against (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_score)

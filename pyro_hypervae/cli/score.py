"""``pyro-hypervae score``: outlier scores of any points under a trained run."""

from __future__ import annotations

import argparse

import torch

from ..checkpoint import write_json_atomic
from ..data.sources import read_points
from ..data.tasks import DataError
from ..evaluation.outliers import outlier_scores
from ..models.build import load_run
from ..registry import SCORES


def cmd_score(args) -> int:
    config, _, model = load_run(args.run)
    x = read_points(args.data, model.target.x_shape)
    try:
        model.target.likelihood.check(x)
    except ValueError as e:
        raise DataError(f"{args.data}: {e} (the run was trained with binarization={config.data.binarization!r})") from None
    which = args.score or model.scores[0]
    if which not in model.scores:
        raise ValueError(f"score {which!r} is not defined for {model.name}; choose one of {list(model.scores)}")
    torch.manual_seed(args.seed)
    scores = outlier_scores(model, x, num_samples=args.samples)[which]
    result = {
        "run": str(args.run),
        "data": str(args.data),
        "model": model.name,
        "score": which,
        "higher_is_more_anomalous": SCORES[which].higher_is_more_anomalous,
        "num_samples": args.samples,
        "scores": scores.tolist(),
    }
    out = write_json_atomic(result, args.out)
    print(f"wrote {len(scores)} {which} scores of {model.name} to {out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help="outlier scores (higher = more anomalous) of the points in an .npz under a trained run")
    p.add_argument("--run", required=True, help="run directory (from train)")
    p.add_argument("--data", required=True, help=".npz with an array 'x' of points shaped like the run's data")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.add_argument("--score", default=None, choices=SCORES.names(),
                   help="; ".join(f"{s.name}: {s.formula}" for _, s in SCORES.items()) + " (default: the model's first: neg_elbo)")
    p.add_argument("--samples", type=int, default=8, help="z samples for the negative ELBO")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_score)

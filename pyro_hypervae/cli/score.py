"""``pyro-hypervae score``: outlier scores of any points under a trained run."""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from ..checkpoint import write_json_atomic
from ..data.sources import read_points
from ..data.tasks import DataError
from ..evaluation.outliers import DEFAULT_SCORES, FALLBACK_SCORE, LABELLED_SCORES, labelled_scores, check_score_name, default_score, outlier_scores, paradox_warning, score_reference
from ..inference.device import resolve_device
from ..models.build import load_run
from ..registry import SCORES
from .settings import add_device_flag


def read_task_labels(path, data, n: int) -> torch.Tensor:
    """The .npz's array ``task`` (n,): each point's task, a name or an index of the run's tasks -> indices (n,)."""
    with np.load(path, allow_pickle=False) as f:
        if "task" not in f.files:
            raise DataError(f"--task-labels: {path} has no array 'task' (one task name or index of the run per point); "
                            f"it has {sorted(f.files)}")
        labels = f["task"]
    if labels.shape != (n,):
        raise DataError(f"--task-labels: {path}'s 'task' has shape {labels.shape}; it needs one label per point, ({n},)")
    names = {str(v): None for v in labels.tolist()}
    for v in names:
        try:
            names[v] = data.find_task(v)
        except (IndexError, ValueError, KeyError) as e:
            raise DataError(f"--task-labels: task {v!r} in {path} is not one of the run's tasks ({e})") from None
    return torch.tensor([names[str(v)] for v in labels.tolist()])


def cmd_score_labelled(args, config, data, model, x) -> int:
    """``score --task-labels``: each point under its own task's model."""
    which = args.score or "neg_elbo"
    if which not in LABELLED_SCORES:
        raise ValueError(f"--task-labels scores each point under its task's model: choose --score from {list(LABELLED_SCORES)} "
                         f"(model-level scores such as kl_u need a point to be its own task: drop --task-labels)")
    tasks = read_task_labels(args.data, data, len(x))
    torch.manual_seed(args.seed)
    scores, reference = labelled_scores(model, data, x, tasks, args.samples, args.reference_points)
    if which not in scores:
        raise ValueError(f"score {which!r} is not defined for points shaped {tuple(x.shape[1:])}; choose from {sorted(scores)}")
    result = {
        "run": str(args.run), "data": str(args.data), "model": model.name, "score": which, "default_score": "neg_elbo",
        "higher_is_more_anomalous": True, "units": "bits" if which.startswith("complexity") else "nats",
        "num_samples": args.samples, "task_labels": True,
        "reference": f"each task's training points (at most {args.reference_points} per task) under the same task's model",
        "threshold_95": float(np.quantile(reference[which], 0.95)),
        "tasks": [data.task_names[t] for t in tasks.tolist()], "warnings": [], "scores": scores[which].tolist(),
    }
    out = write_json_atomic(result, args.out)
    print(f"wrote {len(x)} {which} scores of {model.name}, each point under its task's model, to {out}")
    return 0


def cmd_score(args) -> int:
    device = resolve_device(args.device)
    config, data, model = load_run(args.run, device=device)
    x = read_points(args.data, model.target.x_shape)
    try:
        model.target.likelihood.check(x)
    except ValueError as e:
        raise DataError(f"{args.data}: {e} (the run was trained with binarization={config.data.binarization!r})") from None
    if args.reference_points < 1:
        raise ValueError(f"--reference-points must be at least 1, got {args.reference_points}")
    if args.task_labels:
        return cmd_score_labelled(args, config, data, model, x)
    which = args.score or default_score(model)
    check_score_name(model, which)
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
                   "Default: the best on validation for the run's model and kind of data in docs/results/outliers "
                   "(images under a Bernoulli likelihood: "
                   + ", ".join(f"{m} {n}" for m, n in DEFAULT_SCORES["images"].items())
                   + "; other data: " + ", ".join(f"{m} {n}" for m, n in DEFAULT_SCORES["other"].items())
                   + f"; any other model: {FALLBACK_SCORE}); the paper's score: --score neg_elbo")
    p.add_argument("--samples", type=int, default=8, help="z samples for the negative ELBO")
    p.add_argument("--reference-points", type=int, default=1000,
                   help="normal training points whose scores typicality and combinations are measured against (default 1000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--task-labels", action="store_true",
                   help="score each point under the model of its own task: the .npz's array 'task' names one of the run's "
                        "tasks per point (name or index); scores " + ", ".join(LABELLED_SCORES) + " (default neg_elbo), "
                        "typicality against that task's training points. Without it each point is its own one-point task")
    add_device_flag(p)
    p.set_defaults(func=cmd_score)

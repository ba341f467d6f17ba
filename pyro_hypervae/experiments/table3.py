"""Table 3 of the paper: outlier detection.

``pyro-hypervae reproduce table3 --dataset fashion-mnist|mnist5k`` scores, under
each model trained on the normal dataset only (the table1 runs are reused when
present), the normal test set plus 25% as many points from the other image
dataset (so outliers are 20% of the test set). Scores and metrics come from
``evaluation.outliers``; a point is flagged when its score is above the
``--percentile`` of the scores of normal training points.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from ..data.sources import load_dataset
from ..evaluation.outliers import detection_metrics, outlier_scores, train_threshold
from ..registry import EXPERIMENTS, SCORES
from .paper import OUTLIER_SOURCE, PAPER_SCORES, PAPER_TABLE3
from .protocol import ProtocolExperiment, protocol_config
from .report import command_line, device_of, fmt, log, write_outputs
from .runs import run_dir, trained_or_new


def table3(args) -> dict:
    """Score the normal test points and the outliers under each model trained on
    the normal data, and write the report (JSON + markdown) to ``args.out``."""
    t0 = time.perf_counter()
    if args.dataset not in OUTLIER_SOURCE and not args.outliers:
        raise ValueError(f"table3 pairs image datasets {sorted(OUTLIER_SOURCE)}; for {args.dataset!r} pass --outliers DATASET (same x shape)")
    source = args.outliers or OUTLIER_SOURCE[args.dataset]
    data = load_dataset(args.dataset, None, args.seed, val_fraction=args.val_fraction)
    other = load_dataset(source, None, args.seed)
    if other.x_shape != data.x_shape:
        raise ValueError(f"outlier source {source} has x shape {other.x_shape}, {args.dataset} has {data.x_shape}")
    g = torch.Generator().manual_seed(args.seed)
    per_task = args.normal_points if not args.quick else 3
    normal = torch.cat([data.points(t, "test")[torch.randperm(len(data.points(t, "test")), generator=g)[:per_task]] for t in range(data.num_tasks)])
    n_out = int(round(0.25 * len(normal)))  # outliers are 20% of the test set
    pool = other.x[other.mask("test")]
    outl = pool[torch.randperm(len(pool), generator=g)[:n_out]]
    train_x = data.x[data.is_train]
    train_x = train_x[torch.randperm(len(train_x), generator=g)[: (100 if args.quick else args.threshold_points)]]
    x = torch.cat([normal, outl])
    y = np.r_[np.zeros(len(normal), bool), np.ones(len(outl), bool)]
    log(f"normal: {len(normal)} test points of {args.dataset}; outliers: {len(outl)} test points of {source}; threshold from {len(train_x)} training points")

    rows = {}
    for kind in args.models:
        out = run_dir(args.runs, args.dataset, kind)
        model = trained_or_new(protocol_config(args.dataset, data, kind, args.steps, args.seed, args.overrides), data, out,
                               not args.no_progress, device=device_of(args))
        torch.manual_seed(args.seed)
        s_test = {k: v for k, v in outlier_scores(model, x, num_samples=args.score_samples).items() if k in PAPER_SCORES}
        s_train = outlier_scores(model, train_x, num_samples=args.score_samples)
        for name in s_test:
            row = kind if len(s_test) == 1 else f"{kind} ({SCORES[name].label})"
            thr = train_threshold(s_train[name].numpy(), args.percentile)
            rows[row] = detection_metrics(s_test[name].numpy(), y, thr) | {"score": name}
            r = rows[row]
            log(f"{row}: AUC {r['auc']:.1f}  FPR {r['fpr']:.1f}  FNR {r['fnr']:.1f}  (threshold {thr:.1f})")
    report = {
        "table": "table3",
        "dataset": args.dataset,
        "outlier_source": source,
        "command": command_line(),
        "protocol": {"n_normal": len(normal), "n_outliers": len(outl), "threshold": f"{args.percentile}th percentile of {len(train_x)} normal training scores",
                     "score_samples": args.score_samples, "seed": args.seed},
        "results": rows,
        "paper": PAPER_TABLE3.get(args.dataset),
        "wall_minutes": (time.perf_counter() - t0) / 60,
    }
    lines = [
        f"# Table 3, normal = {args.dataset}, outliers = {source} (20% of the test set)", "",
        f"{len(normal)} normal test points, {len(outl)} outliers; flagged when score > the {args.percentile}th percentile of "
        f"{len(train_x)} normal training scores; negative ELBO with {args.score_samples} z samples.", "",
        "| model | AUC | FPR | FNR | paper AUC | paper FPR | paper FNR |", "|---|---|---|---|---|---|---|",
    ]
    paper = PAPER_TABLE3.get(args.dataset, {})
    for row, r in rows.items():
        p = paper.get(row, (None, None, None))
        lines.append(f"| {row} | {r['auc']:.1f} | {r['fpr']:.1f} | {r['fnr']:.1f} | {fmt(p[0])} | {fmt(p[1])} | {fmt(p[2])} |")
    if report["command"]:
        lines += ["", f"Command: `{report['command']}`"]
    write_outputs(args.out, args.name or f"table3_{Path(args.dataset).stem}", report, "\n".join(lines) + "\n")
    return report


@EXPERIMENTS.register("table3")
class Table3(ProtocolExperiment):
    """The paper's Table 3 (outlier detection) on real data, beside its numbers."""

    table = staticmethod(table3)

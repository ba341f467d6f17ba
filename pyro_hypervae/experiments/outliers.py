"""``pyro-hypervae reproduce outliers``: one table of outlier detection for every
model and score, on four problems (columns):

* ``fashion-mnist:mnist5k``: trained on Fashion-MNIST, MNIST-5k digits are the outliers
  (where every likelihood fails: the paradox);
* ``mnist5k:fashion-mnist``: the other way round;
* ``digits:holdout``: digits with one digit held out of training; that digit is the outlier;
* ``alloys:holdout``: the alloys with one phase held out.

Each column, seed and model: the model is trained on the normal data (the
paper's protocol for the image pairs; the library's defaults, as discovery,
for the held-out columns; 10% of each task's training points kept for
validation; runs reused from ``runs/outliers``), and every score it has (``evaluation.outliers``) is
computed on

* the reference: 1,000 random normal training points (typicality's mean and the
  combinations' standardisation);
* validation: normal validation points (10% of each task's training points,
  never trained on; up to 200 per task) against outliers from the outlier
  source's *training* split (the held-out task's training points; for the image
  pairs 25% as many as the normal ones): where a score is chosen per column and
  the default score is chosen;
* test: normal test points (up to 200 per task) against outliers from the
  outlier source's *test* split (all of the held-out task's; 25% as many for
  the image pairs), touched once for the reported AUC and FPR at 95% TPR.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

from ..analysis.plots import pyplot, save_figure
from ..config import Config
from ..data.sources import load_dataset
from ..data.tasks import TaskDataset
from ..evaluation.outliers import available_scores, detection_metrics, outlier_scores, score_reference
from ..models.build import load_data_and_holdout
from ..registry import EXPERIMENTS, SCORES
from .protocol import protocol_config
from .report import add_output_options, command_line, device_of, label, log, read_reports, write_outputs
from .runs import train_or_reuse

# HyperGAN's settings per column (the rest HyperGANConfig's defaults): the image pairs as
# ``reproduce hypergan-ood`` (lr chosen on MNIST-5k's validation, lr_choice_mnist5k.md; used
# for Fashion-MNIST as well), the held-out columns at digits' validation choice (lr_choice_digits.md)
HYPERGAN_IMAGES = {"nets_per_step": 10, "lr": 1e-4, "disc_lr": 1e-4, "log_every": 100}
HYPERGAN_VECTORS = {"lr": 1e-3, "disc_lr": 1e-3}

# the scores drawn as histograms, normal against outliers
PLOT_SCORES = ("neg_elbo", "kl_u", "complexity", "typicality", "entropy")
# the combinations tried on validation (z-values summed over the reference)
COMBINATIONS = ("typicality+kl_u", "typicality+complexity", "complexity+kl_u", "neg_elbo+complexity")


@dataclass(frozen=True)
class Column:
    """One detection problem: the normal dataset and where the outliers come from."""

    key: str
    normal: str
    outliers: Optional[str] = None  # another dataset; None: a task of ``normal`` held out
    holdout: Optional[str] = None

    @property
    def title(self) -> str:
        if self.outliers:
            return f"{self.normal} vs {self.outliers}"
        return f"{self.normal}, {self.holdout} held out"


def columns(digit: str, phase: str) -> Dict[str, Column]:
    return {c.key: c for c in (
        Column("fashion-mnist:mnist5k", "fashion-mnist", outliers="mnist5k"),
        Column("mnist5k:fashion-mnist", "mnist5k", outliers="fashion-mnist"),
        Column("digits:holdout", "digits", holdout=digit),
        Column("alloys:holdout", "alloys", holdout=phase),
    )}


def _pick(x: torch.Tensor, n: int, g: torch.Generator) -> torch.Tensor:
    return x[torch.randperm(len(x), generator=g)[:n]]


def _config_and_run(col: Column, kind: str, seed: int, args) -> Tuple[Config, Path, TaskDataset, Optional[TaskDataset]]:
    """The model's config and run directory, its training data and the held-out task (or None)."""
    if col.outliers:
        data = load_dataset(col.normal, None, seed, val_fraction=args.val_fraction)
        config = protocol_config(col.normal, data, kind, args.steps, seed)
        return config, Path(args.runs) / col.normal / f"{kind}_s{seed}", data, None
    # the library's defaults (as discovery), one task held out, a validation split of the others
    config = Config(dataset=col.normal, model=kind, seed=seed, holdout=str(col.holdout), steps=args.holdout_steps,
                    val_fraction=args.val_fraction)
    data, held = load_data_and_holdout(config)
    return config, Path(args.runs) / f"{col.normal}-holdout-{col.holdout}" / f"{kind}_s{seed}", data, held


def _point_sets(col: Column, data: TaskDataset, held: Optional[TaskDataset], seed: int, args) -> Dict[str, Tuple[torch.Tensor, torch.Tensor]]:
    """{"reference": (x, None), "val": (normal, outliers), "test": (normal, outliers)}."""
    g = torch.Generator().manual_seed(seed)
    reference = _pick(data.x[data.is_train], args.reference_points, g)
    per = args.normal_points
    test_n = torch.cat([_pick(data.points(t, "test"), per, g) for t in range(data.num_tasks)])
    val_n = torch.cat([_pick(data.points(t, "val"), per, g) for t in range(data.num_tasks)])
    if col.outliers:
        other = load_dataset(col.outliers, None, seed)
        k_test, k_val = int(round(0.25 * len(test_n))), int(round(0.25 * len(val_n)))
        test_o = _pick(other.x[other.mask("test")], k_test, g)
        val_o = _pick(other.x[other.mask("train")], k_val, g)
    else:
        test_o, val_o = held.x[held.mask("test")], held.x[held.mask("train")]
    if len(val_n) == 0 or len(val_o) == 0 or len(test_o) == 0:
        raise ValueError(f"{col.title}: not enough points for the validation and test sets")
    return {"reference": (reference, None), "val": (val_n, val_o), "test": (test_n, test_o)}


def score_column(col: Column, kind: str, seed: int, args) -> dict:
    """Train or reuse one model on a column's normal data and score its validation and test sets:
    HyperVAE's family by ``score_hypervae_column``, HyperGAN by ``score_hypergan_column``."""
    return COLUMN_SCORERS.get(kind, score_hypervae_column)(col, kind, seed, args)


def _metrics(result: dict, split: str, scores: Dict[str, torch.Tensor], n_normal: int, n_out: int,
             ref_scores: Dict[str, np.ndarray], hist: dict) -> None:
    """Fill result["scores"][name][split] with AUC and FPR at 95% TPR of each score (the first
    ``n_normal`` points normal, the next ``n_out`` outliers); keep the test histograms."""
    y = np.r_[np.zeros(n_normal, bool), np.ones(n_out, bool)]
    for name, v in scores.items():
        v = v.numpy()
        threshold = float(np.percentile(ref_scores[name], 95)) if name in ref_scores else float("inf")
        m = detection_metrics(v, y, threshold)
        result["scores"].setdefault(name, {})[split] = {"auc": m["auc"], "fpr95": m["fpr95"]}
        if split == "test":
            hist[name] = (v[:n_normal], v[n_normal:])
    result[f"{split}_points"] = [n_normal, n_out]


def score_hypergan_column(col: Column, kind: str, seed: int, args) -> dict:
    """HyperGAN (a classifier of the normal data's tasks, as classes): the entropy and variance of
    ``args.hypergan_members`` generated networks' softmax, on point sets drawn as HyperVAE's
    (grey levels, never binarized: HyperGAN's inputs)."""
    from ..hypergan import HyperGANConfig, load_labelled_and_holdout, member_outputs, uncertainty_scores
    from .hypergan import train_or_reuse as train_or_reuse_hypergan

    settings = HYPERGAN_IMAGES if col.outliers else HYPERGAN_VECTORS
    config = HyperGANConfig(dataset=col.normal, seed=seed, val_fraction=args.val_fraction, holdout=str(col.holdout or ""),
                            steps=args.hypergan_steps, pretrain_steps=min(200, args.hypergan_steps),
                            checkpoint_every=max(1, min(200, args.hypergan_steps)), **settings)
    runs = Path(args.runs) / (col.normal if col.outliers else f"{col.normal}-holdout-{col.holdout}")
    data, method, _ = train_or_reuse_hypergan(config, str(runs), not args.no_progress, device=device_of(args))
    _, held = load_labelled_and_holdout(config)
    g = torch.Generator().manual_seed(seed)
    per = args.normal_points

    def normal(split: str) -> torch.Tensor:
        s = data.split(split)
        return torch.cat([_pick(s.x[s.y == c], per, g) for c in range(data.num_classes)])

    test_n, val_n = normal("test"), normal("val")
    if col.outliers:
        other = load_dataset(col.outliers, binarization="none", seed=seed)
        test_o = _pick(other.x[other.mask("test")].float(), int(round(0.25 * len(test_n))), g)
        val_o = _pick(other.x[other.mask("train")].float(), int(round(0.25 * len(val_n))), g)
    else:
        test_o, val_o = held.x[held.mask("test")].float(), held.x[held.mask("train")].float()
    train = data.split("train").x
    reference = _pick(train, args.reference_points, g)
    k = method.available(args.hypergan_members)

    def scores(x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return uncertainty_scores(member_outputs(method, x, k, seed=seed).softmax(-1))

    ref = {n: v.numpy() for n, v in scores(reference).items()}
    result = {"column": col.key, "model": kind, "seed": seed, "run": str(runs), "members": k, "scores": {}}
    hist: dict = {}
    for split, (a, b) in {"val": (val_n, val_o), "test": (test_n, test_o)}.items():
        _metrics(result, split, scores(torch.cat([a, b])), len(a), len(b), ref, hist)
    log(f"{col.key} {kind} seed {seed}: " + ", ".join(f"{n} {r['test']['auc']:.1f}" for n, r in result["scores"].items()))
    return result | {"_hist": hist}


def score_hypervae_column(col: Column, kind: str, seed: int, args) -> dict:
    """HyperVAE, the pooled VAE or MetaVAE: every score of ``evaluation.outliers`` it has."""
    config, out, data, held = _config_and_run(col, kind, seed, args)
    model, *_ = train_or_reuse(config, data, out, not args.no_progress, device=device_of(args))
    model.eval()
    sets = _point_sets(col, data, held, seed, args)
    torch.manual_seed(seed)
    ref = score_reference(model, sets["reference"][0], args.score_samples)
    names = available_scores(model)
    combos = [c for c in COMBINATIONS if all(p in names for p in c.split("+"))]
    result = {"column": col.key, "model": kind, "seed": seed, "run": str(out), "scores": {}}
    hist = {}
    for split in ("val", "test"):
        normal, outl = sets[split]
        s = outlier_scores(model, torch.cat([normal, outl]), args.score_samples, reference=ref, combinations=combos)
        _metrics(result, split, s, len(normal), len(outl), ref.scores, hist)
    log(f"{col.key} {kind} seed {seed}: " + ", ".join(f"{n} {r['test']['auc']:.1f}" for n, r in result["scores"].items()))
    return result | {"_hist": hist}


# the models scored by a function of their own (the rest: HyperVAE's family)
COLUMN_SCORERS = {"hypergan": score_hypergan_column}


def _label(kind: str) -> str:
    return "HyperGAN" if kind == "hypergan" else label(kind)


def _mean_sd(v: List[float]) -> str:
    return f"{np.mean(v):.1f} ± {np.std(v, ddof=1):.1f}" if len(v) > 1 else f"{v[0]:.1f}"


def outliers_markdown(report: dict) -> str:
    cols = report["columns"]
    results = report["results"]
    seeds = {c: sorted({r["seed"] for r in results if r["column"] == c}) for c in cols}
    lines = ["# Outlier detection: every model and score on four problems", "",
             "AUC in % (outliers the positive class) and, after the slash, FPR at 95% TPR in %; mean ± std over each "
             "column's seeds (" + "; ".join(f"{cols[c]['title']}: {', '.join(map(str, s))}" for c, s in seeds.items()) +
             "). Higher AUC and lower FPR are better. Each point scored alone.", "",
             "| model | score | " + " | ".join(cols[c]["title"] for c in cols) + " |", "|---|---|" + "---|" * len(cols)]
    rows = sorted({(r["model"], s) for r in results for s in r["scores"]}, key=lambda ms: (report["models"].index(ms[0]), ms[1]))
    for kind, score in rows:
        cells = []
        for c in cols:
            mine = [r["scores"][score]["test"] for r in results if r["column"] == c and r["model"] == kind and score in r["scores"]]
            cells.append(f"{_mean_sd([m['auc'] for m in mine])} / {_mean_sd([m['fpr95'] for m in mine])}" if mine else "-")
        lines.append(f"| {_label(kind)} | {score} | " + " | ".join(cells) + " |")
    lines += ["", "**Chosen on validation** (per column and seed, the score with the best validation AUC; its test AUC):", "",
              "| model | " + " | ".join(cols[c]["title"] for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for kind in report["models"]:
        cells = []
        for c in cols:
            mine = [r for r in results if r["column"] == c and r["model"] == kind]
            if not mine:
                cells.append("-")
                continue
            picks = [max(r["scores"], key=lambda s: r["scores"][s]["val"]["auc"]) for r in mine]
            cells.append(f"{_mean_sd([r['scores'][p]['test']['auc'] for r, p in zip(mine, picks)])} ({', '.join(sorted(set(picks)))})")
        lines.append(f"| {_label(kind)} | " + " | ".join(cells) + " |")
    names = sorted({n for row in report["validation_ranking"] for n in row["scores"]})
    lines += ["", "**Validation AUC, mean over the columns of one kind of data** (each column's mean over its seeds; how the "
              "default score is chosen; the best of each row in bold):", "",
              "| model | columns | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for row in report["validation_ranking"]:
        best = max(row["scores"], key=row["scores"].get)
        cells = [("**{:.1f}**" if n == best else "{:.1f}").format(row["scores"][n]) if n in row["scores"] else "-" for n in names]
        lines.append(f"| {_label(row['model'])} | {', '.join(row.get('columns', []))} | " + " | ".join(cells) + " |")
    lines += ["", "Scores: " + "".join(f"`{n}`: {SCORES[n].formula}; " for n in report["score_names"] if n in SCORES) +
              "`A+B`: the z-values of A and B (standardised on the reference of normal training points) summed" +
              ("; HyperGAN's `entropy`: of the mean softmax of its generated networks, `variance`: of their softmax across "
               "networks, averaged over classes (HyperGAN's settings: experiments.outliers.HYPERGAN_IMAGES, HYPERGAN_VECTORS)"
               if "hypergan" in report["models"] else "") + ".", "",
              "Points: " + "; ".join(f"{cols[c]['title']}: {cols[c]['points']}" for c in cols), "",
              f"Command: `{report['command']}`" if report["command"] else ""]
    if report.get("merged"):
        lines += ["", "Merged (no new numbers) from: " + "; ".join(f"`{c}`" for c in report["commands"] if c)]
    return "\n".join(lines) + "\n"


def merge_reports(reports: List[dict]) -> dict:
    """One report from several (other columns, models or seeds); refuses a (column, model, seed) twice."""
    if not reports:
        raise ValueError("nothing to merge")
    results = [r for rep in reports for r in rep["results"]]
    keys = [(r["column"], r["model"], r["seed"]) for r in results]
    if len(set(keys)) != len(keys):
        raise ValueError("the reports repeat a (column, model, seed); merge each only once")
    cols = {k: v for rep in reports for k, v in rep["columns"].items()}
    models = list(dict.fromkeys(m for rep in reports for m in rep["models"]))
    hists = {k: h for rep in reports for k, h in rep.get("histograms", {}).items()}
    return {"experiment": "outliers", "columns": cols, "models": models, "histograms": hists,
            "seeds": sorted({r["seed"] for r in results}), "results": results,
            "commands": [rep.get("command") for rep in reports],
            "score_names": sorted({s for r in results for s in r["scores"]}),
            "validation_ranking": _validation_ranking(results, models)}


def _validation_ranking(results: List[dict], models: List[str]) -> List[dict]:
    """Per model and per kind of data (the columns whose results have the same scores: images
    under a Bernoulli likelihood have the complexity scores, continuous data not), each score's
    validation AUC averaged over the seeds of a column, then over the columns (each column
    weighs the same, whatever its number of seeds)."""
    ranking = []
    for kind in models:
        mine = [r for r in results if r["model"] == kind]
        groups: Dict[tuple, List[dict]] = {}
        for r in mine:
            groups.setdefault(tuple(sorted(r["scores"])), []).append(r)
        for names, rs in groups.items():
            cols = sorted({r["column"] for r in rs})
            per_col = {n: [np.mean([r["scores"][n]["val"]["auc"] for r in rs if r["column"] == c]) for c in cols] for n in names}
            ranking.append({"model": kind, "columns": cols, "scores": {n: float(np.mean(v)) for n, v in per_col.items()}})
    return ranking


def _plot(hists: Dict[str, Dict[str, tuple]], cols: Dict[str, Column], path: Path, titles: Optional[dict] = None) -> None:
    """Histograms of the normal and outlier test scores (the first model and seed), one row per
    column, one panel per score of ``PLOT_SCORES``."""
    plt = pyplot()
    have = {n for h in hists.values() for n in h}
    names = [n for n in PLOT_SCORES if n in have] or sorted(have)
    fig, axes = plt.subplots(len(hists), len(names), figsize=(3.0 * len(names), 2.3 * len(hists)), squeeze=False)
    for i, (key, h) in enumerate(hists.items()):
        for j, name in enumerate(names):
            ax = axes[i, j]
            if name in h:
                a, b = h[name]
                lo, hi = np.percentile(np.r_[a, b], [0.5, 99.5])
                bins = np.linspace(lo, hi + 1e-9, 40)
                ax.hist(a, bins, alpha=0.6, density=True, label="normal")
                ax.hist(b, bins, alpha=0.6, density=True, label="outliers")
            ax.set_yticks([])
            ax.tick_params(labelsize=6)
            if i == 0:
                ax.set_title(name, fontsize=8)
            if j == 0:
                ax.set_ylabel(titles[key]["title"] if titles else cols[key].title, fontsize=7)
    axes[0, 0].legend(fontsize=6)
    save_figure(fig, path, 110)


@EXPERIMENTS.register("outliers")
class Outliers:
    """Outlier detection: every model x score on four problems (AUC, FPR at 95 percent TPR), scores chosen on validation."""

    @staticmethod
    def add_arguments(p: argparse.ArgumentParser) -> None:
        p.add_argument("--columns", nargs="+", default=list(columns("3", "HCP")),
                       help="problems (default all): fashion-mnist:mnist5k mnist5k:fashion-mnist digits:holdout alloys:holdout")
        p.add_argument("--models", nargs="+", default=["hypervae", "vae", "metavae", "hypergan"],
                       help="models (default hypervae vae metavae hypergan; HyperGAN: its entropy and variance scores)")
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
        p.add_argument("--digit", default="3", help="the digit held out in digits:holdout (default 3)")
        p.add_argument("--phase", default="HCP", help="the phase held out in alloys:holdout (default HCP)")
        p.add_argument("--steps", type=int, default=10000, help="training steps for the image pairs (the paper's protocol: 10,000)")
        p.add_argument("--holdout-steps", type=int, default=2000, help="training steps for the held-out columns (as discovery: 2,000)")
        p.add_argument("--val-fraction", type=float, default=0.1, help="validation fraction of each task's training points (default 0.1)")
        p.add_argument("--normal-points", type=int, default=200, help="normal test (and validation) points per task (at most)")
        p.add_argument("--reference-points", type=int, default=1000, help="normal training points in the reference")
        p.add_argument("--score-samples", type=int, default=8, help="z samples in the negative ELBO")
        p.add_argument("--hypergan-members", type=int, default=100, help="generated networks behind HyperGAN's scores (default 100)")
        p.add_argument("--hypergan-steps", type=int, default=2000, help="HyperGAN's training steps, every column (default 2,000, as hypergan-ood)")
        p.add_argument("--runs", default="runs/outliers", help="where the models are trained or reused")
        add_output_options(p, "docs/results/outliers", "outliers", "file stem (default outliers)", "other columns, models or seeds")

    @staticmethod
    def run(args: argparse.Namespace) -> dict:
        if args.merge:
            reports = read_reports(args.merge)
            report = merge_reports(reports) | {"merged": list(args.merge), "command": command_line()}
            write_outputs(args.out, args.name, report, outliers_markdown(report))
            hists = {k: {n: (np.array(a), np.array(b)) for n, (a, b) in h.items()} for r in reports for k, h in r.get("histograms", {}).items()}
            if hists:
                _plot(hists, {k: Column(k, "") for k in hists}, Path(args.out) / f"{args.name}_histograms.png", report["columns"])
            return report
        torch.set_num_threads(args.threads)
        known = columns(args.digit, args.phase)
        bad = [c for c in args.columns if c not in known]
        if bad:
            raise ValueError(f"unknown column(s) {bad}; choose from {list(known)}")
        cols = {k: known[k] for k in args.columns}
        results, hists = [], {}
        for key, col in cols.items():
            for kind in args.models:
                for seed in args.seeds:
                    r = score_column(col, kind, seed, args)
                    h = r.pop("_hist")
                    if kind == args.models[0] and seed == args.seeds[0]:
                        hists[key] = h
                    results.append(r)
        col_info = {}
        for key, col in cols.items():
            mine = [r for r in results if r["column"] == key]
            col_info[key] = {"title": col.title, "normal": col.normal, "outliers": col.outliers or f"task {col.holdout} of {col.normal}",
                             "points": f"val {mine[0]['val_points'][0]} normal / {mine[0]['val_points'][1]} outliers, "
                                       f"test {mine[0]['test_points'][0]} / {mine[0]['test_points'][1]}"}
        report = {"experiment": "outliers", "columns": col_info, "models": args.models, "seeds": args.seeds,
                  "command": command_line(), "results": results,
                  "histograms": {k: {n: [np.round(a, 3).tolist(), np.round(b, 3).tolist()] for n, (a, b) in h.items() if n in PLOT_SCORES}
                                 for k, h in hists.items()},
                  "score_names": sorted({s for r in results for s in r["scores"]}),
                  "validation_ranking": _validation_ranking(results, args.models)}
        write_outputs(args.out, args.name, report, outliers_markdown(report))
        _plot(hists, cols, Path(args.out) / f"{args.name}_histograms.png")
        return report

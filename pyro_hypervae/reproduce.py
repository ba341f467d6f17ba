"""``pyro-hypervae reproduce table1|table3 --dataset fashion-mnist|mnist5k|alloys [--quick]``.

Table 1 (density estimation). The paper's protocol: target VAE conv 32-64, dense
100, z 10-d (an MLP for the alloys), u 10-d, Adam lr 3e-4 (0.9, 0.999), batches
of 100 points of one task, 10,000 iterations, NLL by importance sampling with
1024 samples. Four models on the same data and budget: the pooled VAE, MetaVAE,
HyperVAE and per-task VAEs. Columns, nats per point, mean over tasks:

* -EL: negative ELBO on the whole test set (``--elbo-samples`` z draws per point);
* -LL: IS-NLL with ``--eval-samples`` (1024) on ``--nll-points`` test points per
  task (all of them by default for the alloys; a fixed random subset for the
  images, where 1024 decoder passes per point cost 0.3-0.7 s on a shared CPU);
* KL(z): KL(q(z|x) || p(z)), closed form, whole test set;
* gap: -EL - -LL on the NLL subset (the paper's "KL" column equals this gap,
  see docs/results/README.md);
* KL(u): KL(q(u|D_t) || p(u)) per task (HyperVAE only).

Budget: with ``--budget-minutes`` (default 55) the command times a few steps of
each model and the evaluation first and plans the same number of steps for every
model, ``min(--steps, what fits)``. Each model then trains in chunks of 100
steps against its share of the remaining time, so a machine that slows down
(other jobs) cuts steps rather than blowing the budget; the JSON and table record
the steps each model actually ran and the measured step times.
``--steps N --budget-minutes 0`` forces N.

Table 3 (outlier detection): models trained on the normal dataset only (the
table1 runs are reused when present), the normal test set plus 25% as many
points from the other image dataset (so outliers are 20% of the test set);
scores and metrics from ``outliers.py``.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from dataclasses import fields
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import torch

from .baselines import param_summary, param_table
from .checkpoint import load_checkpoint
from .config import Config
from .data import TaskDataset, load_dataset
from .evaluate import evaluate, point_metrics
from .model import HyperVAE
from .train import build_model, fit, restore_model

MODELS = ("vae", "metavae", "hypervae", "pertask")
LABELS = {"vae": "VAE (pooled)", "metavae": "MetaVAE", "hypervae": "HyperVAE", "pertask": "per-task VAEs"}

# The workshop paper's Table 1 (nats; -EL, -LL, KL, KL(u)); its MNIST is the full set.
PAPER_TABLE1 = {
    "mnist5k": {"column": "MNIST (full 70k in the paper)", "rows": {
        "vae": (118.2, 99.4, 18.8, None), "metavae": (108.6, 93.0, 15.5, None), "hypervae": (106.8, 88.2, 18.5, 5.7)}},
    "fashion-mnist": {"column": "F-MNIST", "rows": {
        "vae": (252.2, 237.7, 14.5, None), "metavae": (245.2, 232.7, 13.7, None), "hypervae": (245.7, 231.8, 13.9, 0.4)}},
}
# Table 3 (AUC, FPR, FNR in %), by normal dataset; outlier source and threshold not stated.
PAPER_TABLE3 = {
    "mnist5k": {"vae": (93.0, 16.3, 15.5), "metavae (KL)": (54.7, 47.5, 45.0), "metavae (-EL)": (52.2, 49.4, 50.5), "hypervae": (95.3, 15.6, 8.0)},
    "fashion-mnist": {"vae": (74.6, 33.5, 32.0), "metavae (KL)": (58.2, 44.1, 43.5), "metavae (-EL)": (56.8, 45.8, 44.5), "hypervae": (76.8, 33.6, 28.7)},
}
OUTLIER_SOURCE = {"fashion-mnist": "mnist5k", "mnist5k": "fashion-mnist"}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def protocol_config(dataset: str, data: TaskDataset, kind: str, steps: int, seed: int, overrides: Optional[dict] = None) -> Config:
    """The paper's Table 1 settings for one model, with ``overrides`` (Config keys,
    from ``--set``) applied on top."""
    image = len(data.x_shape) == 3
    config = Config(
        dataset=dataset,
        model=kind,
        target="conv" if image else "mlp",
        dense=100,
        hidden=[100],
        likelihood="bernoulli" if data.is_binary else "gaussian",
        z_dim=10,
        u_dim=10,
        lr=3e-4,
        steps=steps,
        tasks_per_batch=1,
        points_per_task=100,
        seed=seed,
        checkpoint_every=max(1, min(1000, steps)),
        log_every=max(1, min(100, steps)),
        binarization=data.info.get("binarization") if data.info.get("binarization") not in (None,) else None,
        test_fraction=data.info.get("test_fraction") or 0.2,
    )
    return Config.from_dict(config.to_dict() | dict(overrides or {})).validate()


def parse_overrides(items: Optional[List[str]]) -> dict:
    """``["rank=40", "task_encoder=set"]`` -> {"rank": 40, "task_encoder": "set"},
    each value cast to the type of the Config field it sets."""
    known = {f.name for f in fields(Config)}
    fixed = {"model", "steps", "seed", "dataset"}  # set by reproduce's own flags
    defaults = Config()
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or not value:
            raise ValueError(f"--set takes KEY=VALUE pairs, got {item!r} (e.g. --set rank=40 perturbation=1.0)")
        if key not in known:
            raise ValueError(f"--set {item!r}: {key!r} is not a config key; known keys: {sorted(known)}")
        if key in fixed:
            raise ValueError(f"--set {item!r}: {key} has its own flag (--models, --steps, --seed, --dataset)")
        default = getattr(defaults, key)
        try:
            if isinstance(default, bool):
                out[key] = {"true": True, "false": False}[value.lower()]
            elif isinstance(default, (int, float)):
                out[key] = type(default)(value)
            elif isinstance(default, list):
                out[key] = [int(v) for v in value.split(",")]
            else:
                out[key] = value
        except (ValueError, KeyError):
            raise ValueError(f"--set {item!r}: {key} must be of type {type(default).__name__} (default {default!r})") from None
    return out


@torch.no_grad()
def nll_subset(data: TaskDataset, per_task: Optional[int], seed: int) -> TaskDataset:
    """The training points plus at most ``per_task`` test points of each task (a
    fixed random choice); all of them when ``per_task`` is None."""
    if per_task is None:
        return data
    g = torch.Generator().manual_seed(seed)
    keep = data.is_train.clone()
    for t in range(data.num_tasks):
        idx = torch.nonzero((data.task == t) & ~data.is_train).flatten()
        keep[idx[torch.randperm(len(idx), generator=g)[:per_task]]] = True
    return TaskDataset(data.x[keep], data.task[keep], data.is_train[keep], data.task_names, data.name, dict(data.info))


def time_steps(config: Config, data: TaskDataset, n: int = 6) -> float:
    """Seconds per training step of a fresh model (after two warm-up steps)."""
    model = build_model(Config.from_dict(config.to_dict() | {"steps": 2}), data)
    fit(model, data, Config.from_dict(config.to_dict() | {"steps": 2, "log_every": 10**9}), progress=False)
    t = time.perf_counter()
    fit(model, data, Config.from_dict(config.to_dict() | {"steps": n, "log_every": 10**9}), progress=False)
    return (time.perf_counter() - t) / n


def time_eval_point(model, data: TaskDataset, num_samples: int) -> float:
    """Seconds of IS evaluation per point with ``num_samples`` samples."""
    x = data.points(0, "test")[:2]
    theta = model.task_theta(data.points(0, "train")[:50].unsqueeze(0), torch.tensor([0]))
    t = time.perf_counter()
    point_metrics(model, x, theta, num_samples)
    return (time.perf_counter() - t) / len(x)


def run_dir(args, dataset: str, kind: str) -> Path:
    return Path(args.runs) / Path(dataset).stem / kind


# settings that say how long a run is and how often it logs, not what it trains:
# a run that differs only in these is the same run, stopped earlier or later
LENGTH_KEYS = ("steps", "checkpoint_every", "log_every")


def settings_differences(saved: dict, config: Config) -> dict:
    """{key: (value in a run's saved config.json ``saved``, value in ``config``)}
    for every setting but the run's length (``LENGTH_KEYS``) where the two differ."""
    return {k: (saved.get(k), v) for k, v in config.to_dict().items() if saved.get(k) != v and k not in LENGTH_KEYS}


def _refuse_other_settings(out: Path, diff: dict, fix: str) -> None:
    if diff:
        raise FileExistsError(f"{out} holds a run with other settings (" + ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items()) + f"); {fix}")


def train_or_reuse(config: Config, data: TaskDataset, out: Path, progress: bool, deadline: Optional[float] = None, chunk: int = 100):
    """Train into ``out`` for ``config.steps`` steps, reuse its finished run, or
    resume its unfinished one (a crash or a budget stop) when the settings match.

    With ``deadline`` (a ``time.perf_counter`` value) training runs in chunks of
    ``chunk`` steps (``fit`` resumes from the checkpoint, so the chunks make one
    uninterrupted run) and stops after the chunk that passes the deadline.
    Returns (model, training seconds, steps done, reused). A run in ``out`` with
    other settings, or one already past ``config.steps``, is an error: it is
    never trained over."""
    done = 0
    if (out / "checkpoint.pt").exists() and (out / "config.json").exists():
        saved = json.loads((out / "config.json").read_text())
        _refuse_other_settings(out, settings_differences(saved, config), "pass another --runs directory, or delete that run to retrain it")
        state = load_checkpoint(out / "checkpoint.pt")
        done = int(state["step"])
        if done == config.steps:
            log(f"reusing finished run {out}")
            return restore_model(build_model(config, data), state, out), 0.0, config.steps, True
        if done > config.steps:
            raise FileExistsError(f"{out} holds a longer run ({done} steps, {config.steps} asked); pass another --runs directory or --steps {done}")
        log(f"resuming the unfinished run {out} from step {done}")
    model = build_model(config, data)
    t = time.perf_counter()
    if deadline is None:
        fit(model, data, config, out_dir=out, resume=done > 0, progress=progress)
        return model, time.perf_counter() - t, config.steps, False
    first = done
    while done < config.steps:
        nxt = min(config.steps, done + chunk)
        fit(model, data, Config.from_dict(config.to_dict() | {"steps": nxt}), out_dir=out, resume=done > 0, progress=progress)
        done = nxt
        el = time.perf_counter() - t
        log(f"  {config.model}: {done}/{config.steps} steps, {el / (done - first):.2f} s/step, {max(0.0, deadline - time.perf_counter()) / 60:.1f} min left of its share")
        if time.perf_counter() > deadline and done < config.steps:
            log(f"  {config.model}: time share used up; stopping at {done} steps")
            break
    return model, time.perf_counter() - t, done, False


def _fmt(v, digits=1):
    return "-" if v is None else f"{v:.{digits}f}"


# --------------------------------------------------------------------------
# Table 1
# --------------------------------------------------------------------------
def table1(args) -> dict:
    t0 = time.perf_counter()
    data = load_dataset(args.dataset, None, args.seed)
    log(data.summary())
    image = len(data.x_shape) == 3
    models = args.models
    per_task_nll = args.nll_points if args.nll_points is not None else (16 if image else None)
    if args.quick:
        per_task_nll = min(per_task_nll or 4, 4)
    sub = nll_subset(data, per_task_nll, args.seed)
    n_test, n_nll = int((~data.is_train).sum()), int((~sub.is_train).sum())

    # -- size the budget: time each model's step and the evaluation ---------
    steps = args.steps
    timing, eval_est = {}, 0.0
    if args.budget_minutes > 0:
        log("timing a few steps of each model to size the budget ...")
        for kind in models:
            timing[kind] = time_steps(protocol_config(args.dataset, data, kind, 2, args.seed, args.overrides), data)
            log(f"  {kind}: {timing[kind] * 1e3:.0f} ms/step")
        probe = build_model(protocol_config(args.dataset, data, "vae", 1, args.seed), data)
        per_pt = time_eval_point(probe, data, args.eval_samples)
        eval_est = len(models) * (n_nll * per_pt + n_test * per_pt * args.elbo_samples / args.eval_samples) * 1.3
        left = args.budget_minutes * 60 - (time.perf_counter() - t0) - eval_est
        fit_steps = max(1, int(0.9 * left / sum(timing.values())))
        log(f"  IS eval {per_pt:.2f} s/point; evaluation estimate {eval_est / 60:.1f} min; steps that fit: {fit_steps}")
        steps = min(steps, fit_steps)
    log(f"training each model for {steps} steps (paper: 10,000)")

    results, trained = {}, {}
    end = t0 + args.budget_minutes * 60
    for i, kind in enumerate(models):
        config = protocol_config(args.dataset, data, kind, steps, args.seed, args.overrides)
        out = run_dir(args, args.dataset, kind)
        deadline = None
        if args.budget_minutes > 0:
            # this model's share of what is left after the remaining evaluations
            left = len(models) - i
            deadline = time.perf_counter() + max(0.0, end - time.perf_counter() - eval_est * left / len(models)) / left
        log(f"{LABELS[kind]}: training -> {out}")
        model, train_s, done, reused = train_or_reuse(config, data, out, not args.no_progress, deadline)
        trained[kind] = model
        log(f"{LABELS[kind]}: evaluating (-EL on {n_test} test points, -LL with {args.eval_samples} samples on {n_nll})")
        t = time.perf_counter()
        torch.manual_seed(args.seed)
        full = evaluate(model, data, "test", num_samples=args.elbo_samples)
        torch.manual_seed(args.seed)
        nll = evaluate(model, sub, "test", num_samples=args.eval_samples)
        eval_s = time.perf_counter() - t
        eval_est = max(eval_est, eval_s * len(models))  # re-plan the remaining shares with the measured cost
        row = {
            "neg_elbo": full["mean"]["neg_elbo"],
            "nll": nll["mean"]["nll"],
            "kl_z": full["mean"]["kl_z"],
            "neg_elbo_on_nll_subset": nll["mean"]["neg_elbo"],
            "gap": nll["mean"]["neg_elbo"] - nll["mean"]["nll"],
            "kl_u_task": (sum(m["kl_u_task"] for m in full["tasks"].values()) / len(full["tasks"])) if isinstance(model, HyperVAE) else None,
            "steps": done,
            "train_seconds": train_s,
            "reused": reused,
            "eval_seconds": eval_s,
            "params": param_summary(model),
            "per_task": {k: {"neg_elbo": full["tasks"][k]["neg_elbo"], "nll": nll["tasks"][k]["nll"]} for k in full["tasks"]},
            "task_summary": full["task_summary"],
        }
        results[kind] = row
        log(f"{LABELS[kind]}: -EL {row['neg_elbo']:.2f}  -LL {row['nll']:.2f}  KL(z) {row['kl_z']:.2f}  gap {row['gap']:.2f}"
            + (f"  KL(u) {row['kl_u_task']:.2f}" if row["kl_u_task"] is not None else "") + f"  (train {train_s / 60:.1f} min, eval {eval_s / 60:.1f} min)")

    report = {
        "table": "table1",
        "dataset": args.dataset,
        "command": "pyro-hypervae reproduce " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["reproduce"] else None,
        "data": {k: v for k, v in data.info.items() if k != "elements"} | {"summary": data.summary()},
        "protocol": {
            "target": protocol_config(args.dataset, data, "vae", steps, args.seed).target,
            "z_dim": 10, "u_dim": 10, "lr": 3e-4, "tasks_per_batch": 1, "points_per_task": 100,
            "steps": steps, "paper_steps": 10000, "seed": args.seed,
            "eval_samples": args.eval_samples, "elbo_samples": args.elbo_samples,
            "nll_points_per_task": per_task_nll, "n_test": n_test, "n_nll": n_nll,
            "mean": "mean over tasks of the per-point means",
            "overrides": args.overrides,
        },
        "step_seconds": timing,
        "results": results,
        "paper": PAPER_TABLE1.get(args.dataset),
        "wall_minutes": (time.perf_counter() - t0) / 60,
        "torch_threads": torch.get_num_threads(),
    }
    md = table1_markdown(report, trained)
    write_outputs(args, args.name or f"table1_{Path(args.dataset).stem}", report, md)
    return report


def table1_markdown(rep: dict, models) -> str:
    p = rep["protocol"]
    lines = [
        f"# Table 1, {rep['dataset']}: density estimation (nats per point, test set, mean over tasks)",
        "",
        f"Data: {rep['data']['summary']}. Binarization: {rep['data'].get('binarization')} (seed {rep['data'].get('seed')}); "
        f"split: {rep['data'].get('split')}."
        + (f" Transform: {rep['data']['transform']}." if "transform" in rep["data"] else ""),
        f"Protocol: {p['target']} target, z {p['z_dim']}-d, u {p['u_dim']}-d, Adam {p['lr']}, batches of {p['points_per_task']} points of one task, "
        f"**{p['steps']} steps** (paper: {p['paper_steps']}), seed {p['seed']}. -EL: {p['elbo_samples']} z samples per point on all {p['n_test']} test points; "
        f"-LL: IS with {p['eval_samples']} samples on {p['n_nll']} test points"
        + (f" ({p['nll_points_per_task']} per task, fixed random subset)" if p["nll_points_per_task"] and p["n_nll"] < p["n_test"] else " (all)") + "."
        + (" **Changed from the protocol:** " + ", ".join(f"{k}={v}" for k, v in p["overrides"].items()) + "." if p.get("overrides") else ""),
        "",
        "| model | -EL | -LL | KL(z) | -EL on the -LL points | gap -EL - -LL | KL(u) per task | steps | train min | eval min |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, r in rep["results"].items():
        lines.append(
            f"| {LABELS[kind]} | {r['neg_elbo']:.1f} | {r['nll']:.1f} | {r['kl_z']:.1f} | {r['neg_elbo_on_nll_subset']:.1f} | {r['gap']:.1f} | {_fmt(r['kl_u_task'], 2)} | {r['steps']} | "
            + ("reused" if r.get("reused", r["train_seconds"] == 0) else f"{r['train_seconds'] / 60:.1f}") + f" | {r['eval_seconds'] / 60:.1f} |"
        )
    paper = rep.get("paper")
    if paper:
        lines += ["", f"The paper's numbers ({paper['column']}; its KL column equals -EL - -LL):", "",
                  "| model | -EL | -LL | KL | KL(u) |", "|---|---|---|---|---|"]
        for kind, (el, ll, kl, klu) in paper["rows"].items():
            lines.append(f"| {LABELS[kind]} | {el} | {ll} | {kl} | {_fmt(klu)} |")
    lines += ["", "Parameters (thousands; the paper's Table 2 for its 445K target VAE):", "", param_table({LABELS[k]: m for k, m in models.items()})]
    if rep["step_seconds"]:
        lines += ["", "Measured seconds per step: " + ", ".join(f"{LABELS[k]} {v:.3f}" for k, v in rep["step_seconds"].items())
                  + f" (torch threads: {rep['torch_threads']}). Wall time: {rep['wall_minutes']:.1f} min."]
    if rep.get("command"):
        lines += ["", f"Command: `{rep['command']}`"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------
# Table 3
# --------------------------------------------------------------------------
def table3(args) -> dict:
    from .outliers import detection_metrics, outlier_scores, train_threshold

    t0 = time.perf_counter()
    if args.dataset not in OUTLIER_SOURCE and not args.outliers:
        raise ValueError(f"table3 pairs image datasets {sorted(OUTLIER_SOURCE)}; for {args.dataset!r} pass --outliers DATASET (same x shape)")
    source = args.outliers or OUTLIER_SOURCE[args.dataset]
    data = load_dataset(args.dataset, None, args.seed)
    other = load_dataset(source, None, args.seed)
    if other.x_shape != data.x_shape:
        raise ValueError(f"outlier source {source} has x shape {other.x_shape}, {args.dataset} has {data.x_shape}")
    g = torch.Generator().manual_seed(args.seed)
    per_task = args.normal_points if not args.quick else 3
    normal = torch.cat([data.points(t, "test")[torch.randperm(len(data.points(t, "test")), generator=g)[:per_task]] for t in range(data.num_tasks)])
    n_out = int(round(0.25 * len(normal)))  # outliers are 20% of the test set
    pool = other.x[~other.is_train]
    outl = pool[torch.randperm(len(pool), generator=g)[:n_out]]
    train_x = data.x[data.is_train]
    train_x = train_x[torch.randperm(len(train_x), generator=g)[: (100 if args.quick else args.threshold_points)]]
    x = torch.cat([normal, outl])
    y = np.r_[np.zeros(len(normal), bool), np.ones(len(outl), bool)]
    log(f"normal: {len(normal)} test points of {args.dataset}; outliers: {len(outl)} test points of {source}; threshold from {len(train_x)} training points")

    rows, models = {}, {}
    for kind in args.models:
        out = run_dir(args, args.dataset, kind)
        if (out / "checkpoint.pt").exists():
            log(f"{LABELS[kind]}: using trained run {out}")
            # any length will do; every other setting (seed, --set values) must be this table's
            saved = json.loads((out / "config.json").read_text())
            config = protocol_config(args.dataset, data, kind, saved["steps"], args.seed, args.overrides)
            _refuse_other_settings(out, settings_differences(saved, config), "pass the --runs (and --seed, --set) that trained it")
            model = restore_model(build_model(config, data), load_checkpoint(out / "checkpoint.pt"), out)
        else:
            steps = args.steps if args.steps < 10**9 else 10000
            log(f"{LABELS[kind]}: no run at {out}; training {steps} steps")
            model, _, _, _ = train_or_reuse(protocol_config(args.dataset, data, kind, steps, args.seed, args.overrides), data, out, not args.no_progress)
        models[kind] = model
        torch.manual_seed(args.seed)
        s_test = outlier_scores(model, x, num_samples=args.score_samples)
        s_train = outlier_scores(model, train_x, num_samples=args.score_samples)
        for name in s_test:
            label = kind if kind != "metavae" else f"metavae ({'KL' if name == 'kl' else '-EL'})"
            thr = train_threshold(s_train[name].numpy(), args.percentile)
            rows[label] = detection_metrics(s_test[name].numpy(), y, thr) | {"score": name}
            r = rows[label]
            log(f"{label}: AUC {r['auc']:.1f}  FPR {r['fpr']:.1f}  FNR {r['fnr']:.1f}  (threshold {thr:.1f})")
    report = {
        "table": "table3",
        "dataset": args.dataset,
        "outlier_source": source,
        "command": "pyro-hypervae reproduce " + " ".join(shlex.quote(a) for a in sys.argv[2:]) if sys.argv[1:2] == ["reproduce"] else None,
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
    for label, r in rows.items():
        p = paper.get(label, (None, None, None))
        lines.append(f"| {label} | {r['auc']:.1f} | {r['fpr']:.1f} | {r['fnr']:.1f} | {_fmt(p[0])} | {_fmt(p[1])} | {_fmt(p[2])} |")
    if report["command"]:
        lines += ["", f"Command: `{report['command']}`"]
    write_outputs(args, args.name or f"table3_{Path(args.dataset).stem}", report, "\n".join(lines) + "\n")
    return report


# --------------------------------------------------------------------------
# Several seeds of table1
# --------------------------------------------------------------------------
SUMMARY_COLUMNS = (("neg_elbo", "-EL"), ("nll", "-LL"), ("kl_z", "KL(z)"), ("kl_u_task", "KL(u) per task"))


def merge_by_seed(reports: List[dict]) -> List[dict]:
    """Table1 reports (checked by ``summarize_table1``) merged per seed (models of one seed may come from separate
    runs, e.g. the baselines in one process and HyperVAE in another), in seed order."""
    by_seed: Dict[int, dict] = {}
    for r in reports:
        seed = r["protocol"]["seed"]
        if seed not in by_seed:
            by_seed[seed] = r | {"results": dict(r["results"])}
            continue
        have = by_seed[seed]["results"]
        twice = sorted(set(have) & set(r["results"]))
        if twice:
            raise ValueError(f"seed {seed}: model(s) {twice} appear in two reports; pass each run once")
        have.update(r["results"])
    return [by_seed[k] for k in sorted(by_seed)]


def variant_key(model: str, overrides: Optional[dict]) -> str:
    """A model run with ``--set`` settings is its own row: "hypervae (rank=40)"."""
    return model + (" (" + ", ".join(f"{k}={v}" for k, v in overrides.items()) + ")" if overrides else "")


def row_label(summary: dict, key: str) -> str:
    """How a summary row is named in tables and charts: "HyperVAE (rank=40)"."""
    row = summary["results"][key]
    return variant_key(LABELS.get(row["model"], row["model"]), row["overrides"])


def summarize_table1(reports: List[dict]) -> dict:
    """Mean and sample std over seeds of each model's Table 1 columns, and the
    per-seed (paired) differences of each HyperVAE row minus each baseline.

    ``reports``: table1 JSON reports of one dataset and one protocol; the
    reports of one seed are merged (``merge_by_seed``). A model run with
    ``--set`` settings becomes its own row (``variant_key``), so a HyperVAE
    variant sits beside the protocol's HyperVAE and baselines. Rows missing
    from some seed are left out and listed under ``"incomplete"``."""
    for r in reports:
        if r.get("table") != "table1":
            raise ValueError(f"not a table1 report (table={r.get('table')!r})")
    datasets = {r.get("dataset") for r in reports}
    if len(datasets) != 1:
        raise ValueError(f"the reports must all be of one dataset, got {sorted(map(str, datasets))}")
    for key in ("steps", "n_nll", "eval_samples"):
        vals = {r["protocol"][key] for r in reports}
        if len(vals) != 1:
            raise ValueError(f"the reports differ in {key} {sorted(vals)}; summarise runs of one protocol")
    # key each result row by model and the settings its run changed (--set)
    keyed = []
    for r in reports:
        changed = r["protocol"].get("overrides") or {}
        keyed.append(r | {"results": {variant_key(m, changed): row | {"model": m, "overrides": changed} for m, row in r["results"].items()}})
    reports = merge_by_seed(keyed)
    if len(reports) < 2:
        raise ValueError(f"a summary needs table1 reports of at least two seeds, got {len(reports)}")
    seeds = [r["protocol"]["seed"] for r in reports]
    seen = dict.fromkeys(k for r in reports for k in r["results"])  # first-seen order
    keys = [k for k in seen if all(k in r["results"] for r in reports)]
    if not keys:
        raise ValueError("the reports have no model in common")
    rows = {}
    for k in keys:
        first = reports[0]["results"][k]
        row = {"model": first["model"], "overrides": first["overrides"]}
        for col, _ in SUMMARY_COLUMNS:
            vals = [r["results"][k][col] for r in reports]
            if any(v is None for v in vals):
                continue
            a = np.asarray(vals, dtype=float)
            row[col] = {"mean": float(a.mean()), "std": float(a.std(ddof=1)), "per_seed": a.tolist()}
        row["steps"] = [r["results"][k]["steps"] for r in reports]
        rows[k] = row
    diffs: Dict[str, dict] = {}
    for hv in (k for k in keys if rows[k]["model"] == "hypervae"):
        for base in (k for k in keys if rows[k]["model"] != "hypervae"):
            entry = diffs.setdefault(hv, {}).setdefault(base, {})
            for col in ("neg_elbo", "nll"):
                d = np.asarray(rows[hv][col]["per_seed"]) - np.asarray(rows[base][col]["per_seed"])
                entry[col] = {"mean": float(d.mean()), "max": float(d.max()), "min": float(d.min()), "per_seed": d.tolist()}
            # -LL task by task, where the reports carry per-task numbers
            if all("per_task" in r["results"][k] for r in reports for k in (hv, base)):
                tasks = list(reports[0]["results"][hv]["per_task"])
                entry["nll_per_task"] = {}
                for t in tasks:
                    d = np.asarray([r["results"][hv]["per_task"][t]["nll"] - r["results"][base]["per_task"][t]["nll"] for r in reports])
                    entry["nll_per_task"][t] = {"mean": float(d.mean()), "per_seed": d.tolist()}
    p = reports[0]["protocol"]
    return {"table": "table1-seeds", "dataset": reports[0]["dataset"], "seeds": seeds, "steps": p["steps"],
            "n_nll": p["n_nll"], "n_test": p["n_test"], "eval_samples": p["eval_samples"],
            "results": rows, "hypervae_minus": diffs, "incomplete": sorted(set(seen) - set(keys)), "paper": reports[0].get("paper")}


def summary_markdown(summary: dict, sources: List[str]) -> str:
    seeds = summary["seeds"]
    lines = [
        f"# Table 1, {summary['dataset']}, {len(seeds)} seeds ({', '.join(map(str, seeds))}): mean ± std over seeds (nats per point)", "",
        f"{summary['steps']} steps per model; -EL on all {summary['n_test']} test points, -LL with {summary['eval_samples']} importance "
        f"samples on {summary['n_nll']} test points (the same points for every model of a seed). A seed sets the "
        "initialisation, the batch order and the static binarization draw, so seeds differ in data as well.", "",
        "| model | " + " | ".join(label for _, label in SUMMARY_COLUMNS) + " |", "|---" * (len(SUMMARY_COLUMNS) + 1) + "|",
    ]
    for k, row in summary["results"].items():
        cells = [f"{row[c]['mean']:.1f} ± {row[c]['std']:.1f}" if c in row else "-" for c, _ in SUMMARY_COLUMNS]
        lines.append(f"| {row_label(summary, k)} | " + " | ".join(cells) + " |")
    if summary["hypervae_minus"]:
        lines += ["", "HyperVAE minus each baseline, seed by seed (negative: HyperVAE better):", "",
                  "| HyperVAE | baseline | -EL: mean (per seed) | -LL: mean (per seed) |", "|---|---|---|---|"]
        for hv, per_base in summary["hypervae_minus"].items():
            for base, d in per_base.items():
                cells = [f"{d[c]['mean']:+.2f} ({', '.join(f'{v:+.2f}' for v in d[c]['per_seed'])})" for c in ("neg_elbo", "nll")]
                lines.append(f"| {row_label(summary, hv)} | {row_label(summary, base)} | " + " | ".join(cells) + " |")
    if summary.get("incomplete"):
        lines += ["", "Left out (not run for every seed): " + ", ".join(summary["incomplete"]) + "."]
    paper = summary.get("paper")
    if paper:
        lines += ["", f"The paper ({paper['column']}), -EL / -LL: "
                  + "; ".join(f"{LABELS[k]} {el} / {ll}" for k, (el, ll, _, _) in paper["rows"].items()) + "."]
    lines += ["", "From: " + ", ".join(f"`{s}`" for s in sources)]
    return "\n".join(lines) + "\n"


def plot_per_task_differences(summary: dict, path: Path) -> Optional[Path]:
    """Bar chart of each HyperVAE row minus each baseline in -LL, task by task
    (mean over seeds as bars, each seed as a dot). Returns the PNG's path, or
    None when the reports carry no per-task numbers."""
    pairs = [(hv, base, d["nll_per_task"]) for hv, per in summary["hypervae_minus"].items() for base, d in per.items() if "nll_per_task" in d]
    if not pairs:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(pairs[0][2])
    y = np.arange(len(tasks))
    h = 0.8 / len(pairs)
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(tasks) + 1.5 + 0.25 * len(pairs)))
    for i, (hv, base, per_task) in enumerate(pairs):
        off = (i - (len(pairs) - 1) / 2) * h
        means = [per_task[t]["mean"] for t in tasks]
        ax.barh(y + off, means, height=h, label=f"{row_label(summary, hv)} - {row_label(summary, base)}")
        for j, t in enumerate(tasks):
            ax.plot(per_task[t]["per_seed"], [y[j] + off] * len(per_task[t]["per_seed"]), "o", ms=2.5, color="k", alpha=0.6)
    ax.axvline(0, color="k", lw=0.8)
    ax.set_yticks(y, tasks)
    ax.invert_yaxis()
    ax.set_xlabel("-LL difference, nats per point (negative: HyperVAE better)")
    ax.set_title(f"{summary['dataset']}: HyperVAE minus baselines by task\n(bars: mean of {len(summary['seeds'])} seeds; dots: each seed)", fontsize=10)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=1, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def cmd_summary(args) -> int:
    reports = []
    for path in args.inputs:
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"no table1 report at {path}; run `pyro-hypervae reproduce table1 ... --seed N --out DIR` first")
        try:
            reports.append(json.loads(path.read_text()))
        except json.JSONDecodeError as e:
            raise ValueError(f"{path} is not a JSON report ({e})") from None
    summary = summarize_table1(reports)
    stem = args.name or f"table1_{summary['dataset']}_seeds"
    Path(args.out).mkdir(parents=True, exist_ok=True)
    png = plot_per_task_differences(summary, Path(args.out) / f"{stem}_per_task.png")
    md = summary_markdown(summary, [str(p) for p in args.inputs])
    if png is not None:
        md += f"\n![HyperVAE minus each baseline, -LL by task]({png.name})\n"
    write_outputs(args, stem, summary, md)
    return 0


def write_outputs(args, stem: str, report: dict, md: str) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(report, indent=1))
    (out / f"{stem}.md").write_text(md)
    print(md)
    log(f"wrote {out / (stem + '.json')} and {out / (stem + '.md')}")


def cmd_reproduce(args) -> int:
    if args.table == "summary":
        if not args.inputs:
            raise ValueError("reproduce summary needs --inputs: the table1 JSON reports of two or more seeds")
        args.out = args.out or "docs/results"
        return cmd_summary(args)
    args.overrides = parse_overrides(args.set)
    if args.dataset is None:
        raise ValueError(f"reproduce {args.table} needs --dataset (fashion-mnist, mnist5k, alloys or an .npz)")
    # One intra-op thread by default: on a shared, oversubscribed CPU two OpenMP
    # threads made a training step ~25x slower (2.4 s against 0.09 s measured).
    torch.set_num_threads(args.threads)
    if args.quick:
        args.steps = min(args.steps, 3)
        args.budget_minutes = 0
        args.eval_samples = min(args.eval_samples, 16)
        args.elbo_samples = min(args.elbo_samples, 2)
    if args.out is None:
        args.out = "runs/reproduce-quick/results" if args.quick else "docs/results"
    if args.runs is None:
        args.runs = "runs/reproduce-quick" if args.quick else "runs/reproduce"
    bad = [m for m in args.models if m not in MODELS]
    if bad:
        raise ValueError(f"unknown model(s) {bad}; choose from {list(MODELS)}")
    (table1 if args.table == "table1" else table3)(args)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("reproduce", help="the paper's Table 1 or Table 3 on real data, beside its numbers")
    p.add_argument("table", choices=["table1", "table3", "summary"],
                   help="summary: mean ± std over seeds of table1 reports (--inputs)")
    p.add_argument("--dataset", default=None, help="fashion-mnist, mnist5k, alloys (or any dataset name/.npz load_dataset takes)")
    p.add_argument("--inputs", nargs="+", default=None, help="summary: the table1 JSON reports, one per seed")
    p.add_argument("--name", default=None, help="file stem of the outputs (default table1_<dataset>, table3_<dataset>, table1_<dataset>_seeds)")
    p.add_argument("--quick", action="store_true", help="a tiny smoke budget (3 steps, few samples); writes under runs/reproduce-quick")
    p.add_argument("--steps", type=int, default=10000, help="training steps per model (paper: 10,000); capped by --budget-minutes")
    p.add_argument("--budget-minutes", type=float, default=55.0, help="wall-time budget of table1; steps are cut to fit (0: no cap)")
    p.add_argument("--models", nargs="+", default=list(MODELS), help=f"models to run (default: {' '.join(MODELS)})")
    p.add_argument("--eval-samples", type=int, default=1024, help="importance samples for -LL (paper: 1024)")
    p.add_argument("--elbo-samples", type=int, default=4, help="z samples per point for -EL on the whole test set")
    p.add_argument("--nll-points", type=int, default=None, help="test points per task for -LL (default: 16 for images, all otherwise)")
    p.add_argument("--normal-points", type=int, default=200, help="table3: normal test points per task")
    p.add_argument("--threshold-points", type=int, default=1000, help="table3: normal training points for the threshold")
    p.add_argument("--percentile", type=float, default=95.0, help="table3: threshold percentile of training scores")
    p.add_argument("--score-samples", type=int, default=8, help="table3: z samples in the negative ELBO score")
    p.add_argument("--outliers", default=None, help="table3: outlier dataset (default: the other image dataset)")
    p.add_argument("--set", nargs="+", default=None, metavar="KEY=VALUE",
                   help="change a setting of every model from the protocol, e.g. --set rank=40 perturbation=1.0 "
                        "(Config keys; recorded in the report; use its own --runs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1; more only on an idle machine)")
    p.add_argument("--out", default=None, help="where the JSON and markdown go (default docs/results)")
    p.add_argument("--runs", default=None, help="run directories (default runs/reproduce)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_reproduce)

"""Table 1 of the paper: density estimation, four models on the same data and budget.

``pyro-hypervae reproduce table1 --dataset fashion-mnist|mnist5k|alloys [--quick]``
trains the pooled VAE, MetaVAE, HyperVAE and per-task VAEs with the protocol
(``protocol.py``) and reports, in nats per point, mean over tasks:

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
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import torch

from ..data.sources import load_dataset
from ..data.tasks import TaskDataset
from ..evaluation.metrics import evaluate
from ..inference.device import place
from ..models.build import build_model
from ..registry import EXPERIMENTS
from .paper import PAPER_STEPS, PAPER_TABLE1
from .protocol import ProtocolExperiment, protocol_config
from .report import command_line, device_of, fmt, label, log, param_table, write_outputs
from .runs import run_dir, time_eval_point, time_steps, train_or_reuse


@torch.no_grad()
def nll_subset(data: TaskDataset, split: str, per_task: Optional[int], seed: int) -> TaskDataset:
    """The training points plus at most ``per_task`` points of ``split`` of each
    task (a fixed random choice for a seed: the same points for every model);
    all of them when ``per_task`` is None."""
    if per_task is None:
        return data
    g = torch.Generator().manual_seed(seed)
    keep = data.mask("train").clone()
    for t in range(data.num_tasks):
        idx = torch.nonzero(data.mask(split, t)).flatten()
        keep[idx[torch.randperm(len(idx), generator=g)[:per_task]]] = True
    return data.subset(keep)


def table1(args) -> dict:
    """Train the protocol's models on ``args.dataset`` (or reuse their runs),
    evaluate them, and write the report (JSON + markdown) to ``args.out``."""
    t0 = time.perf_counter()
    data = load_dataset(args.dataset, None, args.seed, val_fraction=args.val_fraction)
    log(data.summary())
    image = len(data.x_shape) == 3
    models = args.models
    per_task_nll = args.nll_points if args.nll_points is not None else (16 if image else None)
    if args.quick:
        per_task_nll = min(per_task_nll or 4, 4)
    split = args.split
    if split not in ("val", "test") or args.summary not in ("point", "all") or args.draws < 1:
        raise ValueError(f"need --split val|test, --summary point|all, --draws >= 1; got {split!r}, {args.summary!r}, {args.draws}")
    if split == "val" and args.val_fraction == 0:
        raise ValueError("--split val needs validation points: pass --val-fraction > 0")
    sub = nll_subset(data, split, per_task_nll, args.seed)
    n_test, n_nll = int(data.mask(split).sum()), int(sub.mask(split).sum())
    protocol = dict(summary=args.summary, draws=args.draws if args.summary == "point" else 1, seed=args.seed)

    # -- size the budget: time each model's step and the evaluation ---------
    steps = args.steps
    timing, eval_est = {}, 0.0
    if args.budget_minutes > 0:
        log("timing a few steps of each model to size the budget ...")
        for kind in models:
            timing[kind] = time_steps(protocol_config(args.dataset, data, kind, 2, args.seed, args.overrides), data,
                                      device=device_of(args))
            log(f"  {kind}: {timing[kind] * 1e3:.0f} ms/step")
        probe = build_model(protocol_config(args.dataset, data, "vae", 1, args.seed), data)
        place(probe, device_of(args))
        per_pt = time_eval_point(probe, data, args.eval_samples)
        eval_est = len(models) * (n_nll * per_pt + n_test * per_pt * args.elbo_samples / args.eval_samples) * 1.3
        left = args.budget_minutes * 60 - (time.perf_counter() - t0) - eval_est
        fit_steps = max(1, int(0.9 * left / sum(timing.values())))
        log(f"  IS eval {per_pt:.2f} s/point; evaluation estimate {eval_est / 60:.1f} min; steps that fit: {fit_steps}")
        steps = min(steps, fit_steps)
    log(f"training each model for {steps} steps (paper: {PAPER_STEPS:,})")

    results, trained = {}, {}
    end = t0 + args.budget_minutes * 60
    for i, kind in enumerate(models):
        config = protocol_config(args.dataset, data, kind, steps, args.seed, args.overrides)
        out = run_dir(args.runs, args.dataset, kind)
        deadline = None
        if args.budget_minutes > 0:
            # this model's share of what is left after the remaining evaluations
            left = len(models) - i
            deadline = time.perf_counter() + max(0.0, end - time.perf_counter() - eval_est * left / len(models)) / left
        log(f"{label(kind)}: training -> {out}")
        model, train_s, done, reused = train_or_reuse(config, data, out, not args.no_progress, deadline,
                                                      device=device_of(args))
        trained[kind] = model
        log(f"{label(kind)}: evaluating (-EL on {n_test} {split} points, -LL with {args.eval_samples} samples on {n_nll})")
        t = time.perf_counter()
        torch.manual_seed(args.seed)
        full = evaluate(model, data, split, num_samples=args.elbo_samples, **protocol)
        torch.manual_seed(args.seed)
        nll = evaluate(model, sub, split, num_samples=args.eval_samples, **protocol)
        eval_s = time.perf_counter() - t
        eval_est = max(eval_est, eval_s * len(models))  # re-plan the remaining shares with the measured cost
        row = {
            "neg_elbo": full["mean"]["neg_elbo"],
            "nll": nll["mean"]["nll"],
            "kl_z": full["mean"]["kl_z"],
            "neg_elbo_on_nll_subset": nll["mean"]["neg_elbo"],
            "gap": nll["mean"]["neg_elbo"] - nll["mean"]["nll"],
            "kl_u_task": sum(m["kl_u_task"] for m in full["tasks"].values()) / len(full["tasks"]) if "kl_u" in full["mean"] else None,
            "steps": done,
            "train_seconds": train_s,
            "reused": reused,
            "eval_seconds": eval_s,
            "params": model.param_summary(),
            "per_task": {k: {"neg_elbo": full["tasks"][k]["neg_elbo"], "nll": nll["tasks"][k]["nll"]} for k in full["tasks"]},
            "task_summary": full["task_summary"],
            # standard deviation over the draws of the summary point (the paper's protocol; None for one theta)
            "spread": {"neg_elbo": full["spread"]["neg_elbo"], "nll": nll["spread"]["nll"],
                       "kl_u_task": full["spread"]["kl_u_task"]} if full["spread"] else None,
        }
        results[kind] = row
        log(f"{label(kind)}: -EL {row['neg_elbo']:.2f}  -LL {row['nll']:.2f}  KL(z) {row['kl_z']:.2f}  gap {row['gap']:.2f}"
            + (f"  KL(u) {row['kl_u_task']:.2f}" if row["kl_u_task"] is not None else "") + f"  (train {train_s / 60:.1f} min, eval {eval_s / 60:.1f} min)")

    report = {
        "table": "table1",
        "dataset": args.dataset,
        "command": command_line(),
        "data": {k: v for k, v in data.info.items() if k != "elements"} | {"summary": data.summary()},
        "protocol": {
            "target": protocol_config(args.dataset, data, "vae", steps, args.seed).net.family,
            "z_dim": 10, "u_dim": 10, "lr": 3e-4, "tasks_per_batch": 1, "points_per_task": 100,
            "steps": steps, "paper_steps": PAPER_STEPS, "seed": args.seed,
            "eval_samples": args.eval_samples, "elbo_samples": args.elbo_samples,
            "nll_points_per_task": per_task_nll, "n_test": n_test, "n_nll": n_nll,
            "split": split, "val_fraction": args.val_fraction, "summary": args.summary, "draws": protocol["draws"],
            "mean": "mean over tasks of the per-point means" + (f", mean over {protocol['draws']} draws of the summary point" if protocol["draws"] > 1 else ""),
            "overrides": args.overrides,
        },
        "step_seconds": timing,
        "results": results,
        "paper": PAPER_TABLE1.get(args.dataset),
        "wall_minutes": (time.perf_counter() - t0) / 60,
        "torch_threads": torch.get_num_threads(),
    }
    md = table1_markdown(report, trained)
    write_outputs(args.out, args.name or f"table1_{Path(args.dataset).stem}", report, md)
    return report


SUMMARY_TEXT = {
    "point": "HyperVAE's theta decoded from the posterior mean of q(u | one random training point of the task), {draws} draws per task "
             "(the paper's evaluation; KL(u) of the same q(u | x_r); ± is the standard deviation over the draws)",
    "all": "HyperVAE's theta decoded from the posterior mean of q(u | all the task's training points) (our summary, not the paper's)",
}


def table1_markdown(rep: dict, models) -> str:
    p = rep["protocol"]
    split = p.get("split", "test")
    val = p.get("val_fraction") or 0

    def cell(r, key, digits=1):
        spread = (r.get("spread") or {}).get(key)
        return fmt(r[key], digits) + (f" ± {spread:.{digits}f}" if spread is not None and r[key] is not None else "")

    lines = [
        f"# Table 1, {rep['dataset']}: density estimation (nats per point, {split} set, mean over tasks)",
        "",
        f"Data: {rep['data']['summary']}. Binarization: {rep['data'].get('binarization')} (seed {rep['data'].get('seed')}); "
        f"split: {rep['data'].get('split')}"
        + (f"; validation: {val:.0%} of each task's training points held out (seed {p['seed']}), never trained on" if val else "") + "."
        + (f" Transform: {rep['data']['transform']}." if "transform" in rep["data"] else ""),
        f"Protocol: {p['target']} target, z {p['z_dim']}-d, u {p['u_dim']}-d, Adam {p['lr']}, batches of {p['points_per_task']} points of one task, "
        f"**{p['steps']} steps** (paper: {p['paper_steps']}), seed {p['seed']}. -EL: {p['elbo_samples']} z samples per point on all {p['n_test']} {split} points; "
        f"-LL: IS with {p['eval_samples']} samples on {p['n_nll']} {split} points"
        + (f" ({p['nll_points_per_task']} per task, fixed random subset, the same for every model)" if p["nll_points_per_task"] and p["n_nll"] < p["n_test"] else " (all)") + ". "
        + SUMMARY_TEXT[p.get("summary", "all")].format(draws=p.get("draws", 1)) + "."
        + (" **Changed from the protocol:** " + ", ".join(f"{k}={v}" for k, v in p["overrides"].items()) + "." if p.get("overrides") else ""),
        "",
        "| model | -EL | -LL | KL(z) | -EL on the -LL points | gap -EL - -LL | KL(u) per task | steps | train min | eval min |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, r in rep["results"].items():
        lines.append(
            f"| {label(kind)} | {cell(r, 'neg_elbo')} | {cell(r, 'nll')} | {r['kl_z']:.1f} | {r['neg_elbo_on_nll_subset']:.1f} | {r['gap']:.1f} | {cell(r, 'kl_u_task', 2)} | {r['steps']} | "
            + ("reused" if r.get("reused", r["train_seconds"] == 0) else f"{r['train_seconds'] / 60:.1f}") + f" | {r['eval_seconds'] / 60:.1f} |"
        )
    paper = rep.get("paper")
    if paper:
        lines += ["", f"The paper's numbers ({paper['column']}; its KL column equals -EL - -LL):", "",
                  "| model | -EL | -LL | KL | KL(u) |", "|---|---|---|---|---|"]
        for kind, (el, ll, kl, klu) in paper["rows"].items():
            lines.append(f"| {label(kind)} | {el} | {ll} | {kl} | {fmt(klu)} |")
    lines += ["", "Parameters (thousands; the paper's Table 2 for its 445K target VAE):", "", param_table({label(k): m for k, m in models.items()})]
    if rep["step_seconds"]:
        lines += ["", "Measured seconds per step: " + ", ".join(f"{label(k)} {v:.3f}" for k, v in rep["step_seconds"].items())
                  + f" (torch threads: {rep['torch_threads']}). Wall time: {rep['wall_minutes']:.1f} min."]
    if rep.get("command"):
        lines += ["", f"Command: `{rep['command']}`"]
    return "\n".join(lines) + "\n"


@EXPERIMENTS.register("table1")
class Table1(ProtocolExperiment):
    """The paper's Table 1 (density estimation) on real data, beside its numbers."""

    quick_caps = {"budget_minutes": 0, "eval_samples": 16, "elbo_samples": 2}
    table = staticmethod(table1)
